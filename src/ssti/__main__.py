from ssti.cli import main

main()
