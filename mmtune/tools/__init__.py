"""LLM-aided visual reasoning: the model calls vision tools (detect, count, read_text, crop,
describe) as controller or decision maker, and learns to from world traces.

``registry`` (typed tools, ``@tool``, YAML entries), ``builtins`` and ``vision`` (the tools, on
pixels), ``calls`` (the DSL and chat-template JSON formats and their parser), ``loop`` (modes,
refiner, limits, traces, named failures), ``evaluation`` (eval tasks through the loop), ``traces``
(tool-use SFT samples from the world).
"""
