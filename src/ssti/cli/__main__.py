"""`python -m ssti.cli` (the form `accelerate launch -m ssti.cli ...` and `torchrun -m ssti.cli ...` use)."""

from ssti.cli import main

main()
