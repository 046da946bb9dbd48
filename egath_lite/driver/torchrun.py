"""Several processes, one run: ``torchrun --nproc_per_node N -m egath_lite.driver.torchrun --preset paper ...``.

The command-line entry over ``egath_lite.pipeline.distributed`` (process group, shards by rank, DDP, rank 0
writes): the features stage, the label graph and the hash training of each ``--bits``.
"""

from __future__ import annotations

import torch.distributed as dist


def main(argv: list[str] | None = None) -> int:
    """``torchrun --nproc_per_node N -m egath_lite.driver.torchrun --preset paper --set KEY=VALUE ...``.

    Runs the features stage (shards split by rank), the label graph (rank 0) and the hash training of each
    ``--bits`` (DDP); prints where rank 0 wrote the codes. Without torchrun it is one process.
    """
    import argparse

    from egath_lite.pipeline.codes import ensure_codes
    from egath_lite.pipeline.config import PRESETS, ConfigError, get_config, parse_value
    from egath_lite.pipeline.distributed import barrier, init_from_env, is_main, world_size
    from egath_lite.pipeline.features import ensure_features
    from egath_lite.pipeline.graph import ensure_graph

    p = argparse.ArgumentParser(prog="torchrun --nproc_per_node N -m egath_lite.driver.torchrun")
    p.add_argument("--preset", default="default", choices=PRESETS)
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="any config field, e.g. dataset=mscoco")
    p.add_argument("--bits", nargs="+", type=int, default=None, help="default: the config's bits")
    p.add_argument("--backend", choices=("nccl", "gloo"), default=None, help="default: nccl on CUDA, else gloo")
    args = p.parse_args(argv)
    try:
        overrides = {}
        for item in args.set:
            if "=" not in item:
                raise ConfigError(f"--set {item!r}: use KEY=VALUE, e.g. --set zeta=0.1")
            name, text = item.split("=", 1)
            overrides[name.strip()] = parse_value(name.strip(), text)
        cfg = get_config(args.preset, **overrides)
    except ConfigError as exc:
        print(f"error: {exc}")
        return 2
    init_from_env(args.backend)
    progress = is_main()
    ensure_features(cfg, progress=progress)
    if is_main():
        ensure_graph(cfg)
    barrier()
    for bits in args.bits or cfg.bits:
        payload = ensure_codes(cfg, bits, progress=progress)
        if is_main():
            print(f"[distributed] {world_size()} process(es): {cfg.variant} {bits} bits -> {payload['path']}")
    barrier()
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
