"""`python -m labeling_app [--host 127.0.0.1] [--port 7860] [--allowed-origin URL ...]`: serve the labeling app."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m labeling_app", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=7860, help="TCP port (default 7860)")
    parser.add_argument("--log-level", default="warning", help="uvicorn log level (info shows every request)")
    parser.add_argument("--allowed-origin", action="append", default=[], metavar="URL",
                        help="another origin (scheme://host[:port]) whose pages may send requests here, e.g. the "
                             "public URL behind a proxy that rewrites Host; repeatable; also RLHF_ALLOWED_ORIGINS "
                             "(comma separated). The app's own origin is always allowed.")
    args = parser.parse_args(argv)
    from labeling_app.server import launch
    from rlhf.errors import RlhfError

    try:
        launch(args.host, args.port, args.log_level, allowed_origins=args.allowed_origin)
    except RlhfError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
