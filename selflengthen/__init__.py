"""The Self-Lengthen method: self-instruct, Generator, Extender, filters and LoRA fine-tuning.

Nothing here imports `harness`: the harness passes in a text backend (an OpenAI-compatible
endpoint client or an in-process batched model) that satisfies `infra.backend.TextBackend`.
"""
