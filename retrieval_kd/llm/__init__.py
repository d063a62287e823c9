"""Causal-LM plumbing shared by the LLM teachers (``teachers.llm_*``) and the LLM student
(``students.instruction_distill``).

- :mod:`.loading`: load a causal LM + tokenizer from a spec or GGUF file; device and batch size.
- :mod:`.prompts`: pointwise templates (yes/no, query likelihood) as frames with known spans.
- :mod:`.messages`: chat-message prompts and truncation to a token budget (pairwise, listwise).
- :mod:`.readout`: batched next-token logits at the end of each prompt.
"""
