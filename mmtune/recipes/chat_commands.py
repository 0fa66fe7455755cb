"""``mmtune chat``: an interactive session with a checkpoint about an image (thin call into ``recipes.chat``)."""
from __future__ import annotations

import argparse

from mmtune.files import add_allow_pickle_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("chat", help="talk to a checkpoint about an image, several turns, answers streamed")
    p.add_argument("--model", required=True, help="tuned (mmtune) or plain transformers checkpoint dir")
    p.add_argument("--image", help="image file the conversation is about; omit to talk text only")
    p.add_argument("--max-new-tokens", type=int, default=128, help="tokens per answer at most")
    add_allow_pickle_argument(p)
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=_chat)


def _chat(args: argparse.Namespace) -> int:
    from mmtune.recipes.chat import chat

    chat(args.model, args.image, max_new_tokens=args.max_new_tokens, allow_pickle=args.allow_pickle)
    return 0
