"""pagerules command line: the `pagerules` group. The commands live beside it, grouped: rules.py
(validate, init, test), events.py (process, explain, replay), serving.py (watch, serve), ops.py
(trigger, resolve, ack, oncall, check, status, audit), silences.py (silence), tokens.py (token) and
queue.py (queue list|retry).
Each parses options, calls the engine, and turns its errors into a message and an exit status:
0 all handled, 1 an event or action failed, 2 usage or configuration error.

The live layer, the daemon and the web server are imported inside the commands that use them:
`process --dry-run` starts in half the time without Flask, requests and watchdog.
"""
from __future__ import annotations

import logging
import sys

import click

from engine.commands import events, ops, queue, rules, serving, silences, tokens


@click.group()
@click.version_option(package_name="pagerules", message="%(prog)s %(version)s")
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail to stderr.")
def main(verbose: bool) -> None:
    """pagerules: decide when to wake someone up.

    YAML rules turn JSON events into PagerDuty incidents, and recoveries resolve them.

    Example: python cli.py process --dry-run < examples/events.jsonl
    """
    for stream in (sys.stdout, sys.stderr):  # a lone surrogate prints as its JSON escape, never a crash
        stream.reconfigure(encoding="utf-8", errors="backslashreplace")  # type: ignore[union-attr]
    # Undecodable bytes become U+FFFD, as Go's encoding/json (Alertmanager) does; the JSON is then judged.
    sys.stdin.reconfigure(encoding="utf-8", errors="replace")  # type: ignore[union-attr]
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


for _module in (rules, events, serving, ops, silences, tokens, queue):
    for _command in _module.COMMANDS:
        main.add_command(_command)


if __name__ == "__main__":
    main()
