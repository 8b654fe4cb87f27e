"""`python -m labeling_app [--host 127.0.0.1] [--port 7860]`: serve the labeling app over the workspace store."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m labeling_app", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=7860, help="TCP port (default 7860)")
    parser.add_argument("--log-level", default="warning", help="uvicorn log level (info shows every request)")
    args = parser.parse_args(argv)
    from labeling_app.server import launch

    launch(args.host, args.port, args.log_level)


if __name__ == "__main__":
    main()
