"""The ``research`` group: a parameter sweep on the ledger's returns, on demand.

``research_sweep`` replays the ledger's stored returns under every configuration of a grid
given as run config (the TOML text of an ``allocator sweep`` grid file), through the same
:func:`allocator.research.sweep.run_sweep` as the command line, on the base configuration of
the ``settings`` resource. It writes ``sweep.parquet`` and ``sweep.html`` into a folder per
(grid, returns) pair, so a re-materialisation after a failure resumes from the journal, and
puts the result table and a heatmap in the asset's metadata. It is not part of the rebalance
or bar jobs: ``research_job`` (or the asset's Materialize button) runs it.
"""

import hashlib
import tomllib
from pathlib import Path
from typing import Any

import dagster as dg

from allocator.config import AllocatorConfig
from allocator.data import build_panel, validate_returns
from allocator.errors import ConfigError
from allocator.rebalance import returns_frame
from allocator.research.grid import parse_grid
from allocator.research.page import sweep_page, text_heatmap
from assets._gx import markdown_table
from resources.dagster_resources import AllocatorSettings, LedgerResource

GROUP = "research"


class SweepConfig(dg.Config):
    """The sweep's run config.

    ``grid`` is a grid file's TOML text (``[correlation]\\nthreshold = [0.6, 0.7, 0.8]``);
    ``out_dir`` the folder for the files (empty: ``sweeps/<digest>`` beside the dashboard);
    ``workers`` 0 runs in the run's own process, N > 0 on a local Dask cluster of N workers;
    ``scheduler`` (``tcp://host:port``) on an existing cluster instead.
    """

    grid: str
    out_dir: str = ""
    cash_rate: float = 0.0
    cost: float = 0.0
    workers: int = 0
    scheduler: str = ""


def _base_mapping(settings: AllocatorSettings) -> dict[str, Any]:
    if not settings.config_path:
        return {}
    return tomllib.loads(Path(settings.config_path).read_text(encoding="utf-8"))


@dg.asset(group_name=GROUP, kinds={"dask", "plotly"})
def research_sweep(
    context: dg.AssetExecutionContext,
    config: SweepConfig,
    ledger: LedgerResource,
    settings: AllocatorSettings,
) -> dg.MaterializeResult[None]:
    """Every configuration of the run config's grid, replayed on the ledger's returns."""
    # Imported here: the engine pulls in numba, and the code location this module is loaded
    # by starts every bar run.
    from allocator.research.sweep import run_sweep, write_table

    try:
        raw = tomllib.loads(config.grid)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("grid", f"not valid TOML: {exc}") from exc
    base_map = _base_mapping(settings)
    grid = parse_grid(raw, base_map)
    base = AllocatorConfig.from_mapping(base_map)
    with ledger.open() as store:
        frame = returns_frame(store.returns())
    panel = build_panel(validate_returns(frame, "ledger:daily_returns"), base.calendar.name)
    digest = hashlib.sha256(
        (grid.to_json() + str(panel.sessions[-1]) + str(len(frame))).encode()
    ).hexdigest()[:12]
    out = Path(config.out_dir or Path(settings.dashboard_path).parent / "sweeps" / digest)
    client = cluster = None
    if config.scheduler or config.workers > 0:
        from dask.distributed import Client, LocalCluster

        if config.scheduler:
            client = Client(config.scheduler)  # type: ignore[no-untyped-call]
        else:
            cluster = LocalCluster(  # type: ignore[no-untyped-call]
                n_workers=config.workers, threads_per_worker=1, dashboard_address=None
            )
            client = Client(cluster)  # type: ignore[no-untyped-call]
    try:
        result = run_sweep(
            panel,
            grid,
            out,
            client=client,
            cash_rate=config.cash_rate,
            cost=config.cost,
            progress=False,
        )
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    table = result.table
    write_table(table, out / "sweep.parquet")
    (out / "sweep.html").write_text(sweep_page(table, grid), encoding="utf-8")
    swept = [k for k in grid.keys if table[k].nunique() >= 2]
    heatmap = text_heatmap(table, swept[1], swept[0]) if len(swept) >= 2 else ""
    context.log.info(f"{len(table)} configurations ({result.ran} replayed now) into {out}")
    best = table.sort_values("sharpe", ascending=False, na_position="last").iloc[0]
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(out / "sweep.html")),
            "configurations": len(table),
            "replayed_now": result.ran,
            "skipped_combinations": len(grid.skipped),
            "best_sharpe": float(best["sharpe"]),
            "best_config": dg.MetadataValue.json({k: _plain(best[k]) for k in grid.keys}),
            "result": dg.MetadataValue.md(markdown_table(table.round(4))),
            "heatmap": dg.MetadataValue.md(f"```\n{heatmap}\n```" if heatmap else "one key"),
        }
    )


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


research_job = dg.define_asset_job(
    "research_job",
    selection=dg.AssetSelection.groups(GROUP),
    description="The research group on demand: a sweep on the ledger's returns (grid as config).",
)
