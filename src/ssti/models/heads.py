"""Classification heads on top of a (LoRA-wrapped) backbone, all returning logits [batch, classes].

- `classifier` (default): pooled hidden state -> trained linear head. Decoders pool the last non-pad
  token (padding is on the right), encoders the masked mean of the last hidden states.
- `paper`: the authors' head: every batch padded to `max_length` (as the authors' tokenizer call did),
  then concat(mean over ALL positions, padding included; hidden state at the last position, a pad
  position for short texts) -> a linear head that stays frozen at its seeded random initialisation.
  Padding to the fixed width makes a text's logits independent of what it is batched with.
- `verbalizer`: the causal LM scores one label word per class after a prompt; only the last
  position goes through the LM head, so no vocabulary-sized work is wasted.
"""

from __future__ import annotations

import torch
from torch import nn

HEADS = ("classifier", "paper", "verbalizer")
VERBALIZER_TEMPLATE = "{text}\nAnswer:"


class SequenceClassifier(nn.Module):
    """A backbone plus a head: `forward(input_ids, attention_mask) -> logits`.

    `backbone` is the plain transformers model (LoRA layers, if any, injected in place by PEFT);
    a causal LM for the verbalizer head, the bare body otherwise.
    """

    def __init__(self, backbone: nn.Module, head: str, arch: str, num_labels: int, hidden_size: int,
                 label_token_ids: list[int] | None = None, head_seed: int = 0, pad_to: int | None = None, pad_id: int = 0):
        super().__init__()
        self.pad_to = pad_to if head == "paper" else None  # the paper head sees every text padded to max_length
        self.pad_id = pad_id
        self.backbone = backbone
        self.head_kind = head
        self.arch = arch
        self.num_labels = num_labels
        if head == "verbalizer":
            self.register_buffer("label_token_ids", torch.tensor(label_token_ids, dtype=torch.long), persistent=False)
            self.head = None
            return
        in_features = 2 * hidden_size if head == "paper" else hidden_size
        generator = torch.Generator().manual_seed(head_seed)
        self.head = nn.Linear(in_features, num_labels)
        with torch.no_grad():
            bound = 1.0 / in_features**0.5
            self.head.weight.copy_(torch.empty_like(self.head.weight).uniform_(-bound, bound, generator=generator))
            self.head.bias.zero_()
        if head == "paper":
            self.head.requires_grad_(False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Class logits in fp32 for a right-padded batch."""
        if self.head_kind == "verbalizer":
            hidden = self.backbone.get_decoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            logits = self.backbone.get_output_embeddings()(_last_token(hidden, attention_mask))
            return logits[:, self.label_token_ids].float()
        if self.pad_to is not None and input_ids.shape[1] < self.pad_to:
            extra = self.pad_to - input_ids.shape[1]
            input_ids = nn.functional.pad(input_ids, (0, extra), value=self.pad_id)
            attention_mask = nn.functional.pad(attention_mask, (0, extra), value=0)
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.head_kind == "paper":
            pooled = torch.cat([hidden.mean(dim=1), hidden[:, -1]], dim=-1)
        elif self.arch == "decoder":
            pooled = _last_token(hidden, attention_mask)
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        return self.head(pooled.float())


def _last_token(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The hidden state of each row's last non-pad token (right padding)."""
    last = attention_mask.sum(1) - 1
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last.clamp(min=0)]
