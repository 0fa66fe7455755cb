"""mmtune: tune multimodal LLMs without losing what they know."""
__version__ = "0.1.0"
