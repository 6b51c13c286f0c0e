"""``python -m bench.soak`` (``make soak``): see :mod:`bench.soak` and docs/reliability.md."""

from __future__ import annotations

import argparse
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench.soak.chaos import ChaosSettings
from bench.soak.counting import render_table
from bench.soak.run import RunResult, SoakConfig, run_soak

_ROOT = Path(__file__).resolve().parents[2]


def _parser() -> argparse.ArgumentParser:
    default_s = float(os.environ.get("SOAK_S", "600"))
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    p.add_argument("--users", type=int, default=45, help="policy owners (default 45)")
    p.add_argument("--stakeholders", type=int, default=10, help="per user (default 10)")
    p.add_argument("--hubs", type=int, default=6, help="stakeholders every user lists (6)")
    p.add_argument(
        "--seconds", type=float, default=default_s, help="chaos phase (default $SOAK_S or 600)"
    )
    p.add_argument("--broker", choices=["redis", "rabbitmq", "both"], default="both")
    p.add_argument("--fault-rate", type=float, default=0.15, help="share of API calls failed")
    p.add_argument("--seed", type=int, default=20260302)
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--waves", type=int, default=8, help="users join in waves (8; 1: all at once)")
    p.add_argument(
        "--settle",
        type=float,
        default=240.0,
        help="give up settling after (s, 240; up to 900 while retries are scheduled)",
    )
    p.add_argument("--no-kills", action="store_true", help="faults and cuts only (a control)")
    p.add_argument("--no-cuts", action="store_true", help="no database or broker cuts")
    p.add_argument("--keep-database", action="store_true", help="keep it even when all is well")
    p.add_argument("--out", type=Path, help="logs and policies (default .goodwill/soak/<time>)")
    return p


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    stamp = datetime.now(UTC)
    out = args.out or _ROOT / ".goodwill" / "soak" / stamp.strftime("%Y%m%dT%H%M%SZ")
    never = (1e9, 1e9)
    chaos = ChaosSettings()
    chaos = ChaosSettings(
        kill_every_s=never if args.no_kills else chaos.kill_every_s,
        down_for_s=chaos.down_for_s,
        cut_every_s=never if args.no_cuts else chaos.cut_every_s,
        cut_for_s=chaos.cut_for_s,
    )
    cfg = SoakConfig(
        out_dir=out,
        users=args.users,
        stakeholders=args.stakeholders,
        hubs=args.hubs,
        seconds=args.seconds,
        settle_s=args.settle,
        fault_rate=args.fault_rate,
        seed=args.seed,
        workers=args.workers,
        waves=max(1, args.waves),
        keep_database=args.keep_database,
        chaos=chaos,
    )
    brokers = ["redis", "rabbitmq"] if args.broker == "both" else [args.broker]
    machine = f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores"
    results: list[RunResult] = []
    for name in brokers:
        _say(f"[soak {name}] starting: {cfg.users} users, {cfg.seconds:.0f} s, out {out / name}")
        began = datetime.now(UTC)
        result = run_soak(cfg, name, say=_say)
        results.append(result)
        print(f"\n## {name} — {began:%Y-%m-%d %H:%M} UTC, {machine}\n")
        print(render_table([result.tally]))
        print()
        print(result.parameters(cfg))
        if result.details:
            print("\nPROBLEMS\n" + result.details)
        sys.stdout.flush()
    failed = [r.broker for r in results if not r.tally.ok]
    print(f"\nsoak: {'FAILED: ' + ', '.join(failed) if failed else 'every target met'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
