"""`dra ablate`: the paper's ablations (Tables 4, 5, Fig. 3) and the open choices of docs/design.md, measured.

A suite is a list of settings (a label, a method and `dra.*` overrides) run through a protocol over
datasets and seeds; each setting's score per seed is the average over the datasets, and the table
has one row per setting with the mean ± std over seeds (sample std), like the paper's ablation tables:

    base2new                   Base / New / HM (HM of the mean Base and New)
    cross_dataset, domain_gen  Source / Target (target = mean over the targets)

Runs are the protocols' own run folders (`<output>/base2new/<method>-<hash>/...`), so a setting
shared by two suites (the full DRA) trains once, and a finished run is reused. Tables go to
`<output>/ablate/<protocol>/<suite>.{md,csv,json,png}`. A setting that is not valid for the model at
hand (a rank ratio that keeps no channel at a small rank, a start layer past the last block) is left
out with a note, not an error. A seed whose training diverges (non-finite loss or adapters) is a
result, not an error: it is reported, left out of the mean, and the table's notes name it; a setting
that diverges in every seed gets a row of NaN.
"""

from __future__ import annotations

from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from dra import settings as S
from dra.engine.trainer import TrainingDivergedError
from dra.errors import SettingsError
from dra.io import atomic_write_text
from dra.protocols.experiment import Experiment
from dra.report import Table, write
from dra.report.paper_tables import ABLATION_SCORES, ablation_table
from dra.run_files import SETTINGS_FILE

Setting = tuple[str, str, dict[str, Any]]  # (label, method, dra overrides)


def table4(cfg: DictConfig, blocks: int) -> list[Setting]:
    """Paper Table 4: the plain-adapter baseline, the branches, channel response and regularisation."""
    return [
        ("Baseline (adapter)", "adapter", {}),
        ("DRA-T", "dra", {"branches": "text"}),
        ("DRA-V", "dra", {"branches": "image"}),
        ("DRA-T&V -CR -reg", "dra", {"channel_response": False, "regularization": False}),
        ("DRA-T&V +CR -reg", "dra", {"regularization": False}),
        ("DRA-T&V -CR +reg", "dra", {"channel_response": False}),
        ("DRA-T&V +CR +reg", "dra", {}),
    ]


def table5(cfg: DictConfig, blocks: int) -> list[Setting]:
    """Paper Table 5: the number of groups K and the rank ratios."""
    rows = [
        (1.0, 0.5),
        (1.0, 0.25),
        (1.0, 0.7, 0.4),
        (1.0, 0.6, 0.2),
        (1.0, 0.8, 0.6, 0.4),
        (1.0, 0.7, 0.4, 0.1),
        (1.0, 0.8, 0.6, 0.4, 0.2),
    ]
    return [(f"K={len(r)} {list(r)}", "dra", {"num_groups": len(r), "rank_ratios": list(r)}) for r in rows]


def fig3_rank(cfg: DictConfig, blocks: int) -> list[Setting]:
    """Paper Fig. 3a: the highest rank r (the paper's 8..128 around its 32; here around the configured r)."""
    r = int(S.dra_config(cfg).rank)
    values = sorted({max(1, r // 4), max(1, r // 2), r, 2 * r, 4 * r})
    return [(f"r={v}", "dra", {"rank": v}) for v in values]


def fig3_start(cfg: DictConfig, blocks: int) -> list[Setting]:
    """Paper Fig. 3b: the first adapted block h (1-based)."""
    values = range(1, blocks + 1) if blocks <= 6 else range(1, blocks + 1, 2)
    return [(f"h={h}", "dra", {"start_layer": h}) for h in values]


def design(cfg: DictConfig, blocks: int) -> list[Setting]:
    """The choices of docs/design.md where the paper is silent, each switched against the defaults."""
    return [
        ("defaults", "dra", {}),
        ("noise_temperature=0.1", "dra", {"noise_temperature": 0.1}),
        ("noise_on_log_scores", "dra", {"noise_on_log_scores": True}),
        ("reg_reduction=sample_sum", "dra", {"reg_reduction": "sample_sum"}),
        ("gradient_scaling off", "dra", {"gradient_scaling": False}),
        ("learnable_scores off", "dra", {"learnable_scores": False}),
    ]


RANDOM_GROUPING_TEMPERATURE = 1000.0
"""tau for the mechanism control's random grouping: the Gumbel noise (std 1.28 x tau) drowns the token
scores (softmax over N tokens: about 1/N each) completely, so the groups are a random permutation."""


def mechanism(cfg: DictConfig, blocks: int) -> list[Setting]:
    """The mechanism control (issue #17): DRA's token-importance grouping against noiseless grouping (the
    scores' own order in training too) and random grouping (tau so large that the order is noise)."""
    return [
        ("defaults", "dra", {}),
        ("noiseless grouping (noise_temperature=0)", "dra", {"noise_temperature": 0.0}),
        (
            f"random grouping (noise_temperature={RANDOM_GROUPING_TEMPERATURE:g})",
            "dra",
            {"noise_temperature": RANDOM_GROUPING_TEMPERATURE},
        ),
    ]


SUITES: dict[str, Callable[[DictConfig, int], list[Setting]]] = {
    "table4": table4,
    "table5": table5,
    "rank": fig3_rank,
    "start": fig3_start,
    "design": design,
    "mechanism": mechanism,
}


def setting_cfg(cfg: DictConfig, method: str, overrides: dict[str, Any]) -> DictConfig:
    """`cfg` with the method and the `dra.*` overrides of one setting (validated)."""
    out = OmegaConf.merge(cfg, {"method": method, "dra": overrides})
    S.dra_config(out)  # ValueError when the setting does not fit
    return out


def _score_base2new(exp: Experiment, cfg: DictConfig, seed: int) -> dict:
    from dra.protocols.base2new import run_one

    runs = [run_one(exp, cfg, d, seed) for d in cfg.datasets]
    base = sum(r["base"] for r in runs) / len(runs)
    new = sum(r["new"] for r in runs) / len(runs)
    collapsed = any(r.get("collapsed") for r in runs)  # any dataset's run: the seed's average is not a result
    return {"base": base, "new": new, **({"collapsed": True} if collapsed else {})}


def _score_transfer(exp: Experiment, cfg: DictConfig, seed: int) -> dict:
    from dra.protocols import transfer

    res = transfer.run(
        OmegaConf.merge(cfg, {"seeds": [seed]}), backbone=exp.backbone, echo=lambda *_: None, gather=exp.gather
    )
    acc = {r["dataset"]: r["accuracy"] for r in res["records"]}
    targets = [acc[t] for t in cfg.targets]
    return {"source": acc[cfg.source], "target": sum(targets) / len(targets)}


def settings_table(records: list[dict], protocol: str, title: str) -> Table:
    """One row per setting: mean ± std over seeds (`report.ablation_table`, the one ablation table);
    base2new adds the HM of the means; diverged seeds are left out and named in the notes."""
    return ablation_table(
        records,
        "setting",
        title,
        scores=ABLATION_SCORES["base2new" if protocol == "base2new" else "transfer"],
        label="Setting",
        notes=["Each seed's score is the average over the datasets; mean ± sample std over seeds."],
        intervals=True,
    )


def suite_settings(cfg: DictConfig, suites: list[str], blocks: int, echo=print) -> list[tuple[str, str, DictConfig]]:
    """(suite, label, settings) of every valid setting of `suites`; the others are echoed as left out."""
    out = []
    for suite in suites:
        for label, method, overrides in SUITES[suite](cfg, blocks):
            try:
                c = setting_cfg(cfg, method, overrides)
                if S.dra_config(c).start_layer > blocks:
                    raise SettingsError(f"start_layer {S.dra_config(c).start_layer} > {blocks} blocks")
            except ValueError as e:
                echo(f"[{suite}] {label}: left out ({str(e).splitlines()[0]})")
                continue
            out.append((suite, label, c))
    return out


def check_suites(cfg: DictConfig, suites: list[str]) -> str:
    """The protocol of an ablation; a ValueError for an unknown protocol or suite."""
    protocol = cfg.get("protocol", "base2new")
    if protocol not in S.PROTOCOLS:
        raise SettingsError(f"dra ablate runs over {S.PROTOCOLS}, not {protocol!r}")
    unknown = [s for s in suites if s not in SUITES]
    if unknown:
        raise SettingsError(f"unknown ablation suite(s) {unknown}; choose from {list(SUITES)}")
    return protocol


def run(cfg: DictConfig, suites: list[str], backbone=None, echo=print, gather: dict | None = None) -> dict[str, Table]:
    """Every setting of every suite over cfg.datasets (or source/targets) x cfg.seeds; the tables.
    `gather` (a launched grid, `dra.launch`): read the runs' results only."""
    from dra.report.plots import plot_ablation

    protocol = check_suites(cfg, suites)
    exp = Experiment(cfg, backbone, gather=gather)
    blocks = min(len(exp.backbone.image_blocks), len(exp.backbone.text_blocks))
    score = _score_base2new if protocol == "base2new" else _score_transfer
    out = exp.output / "ablate" / protocol
    tables = {}
    for suite in suites:
        records = []
        for _, label, c in suite_settings(cfg, [suite], blocks, echo):
            for seed in [int(s) for s in cfg.seeds]:
                try:
                    r = {"setting": label, "seed": seed, **score(exp, c, seed)}
                except TrainingDivergedError as e:
                    records.append({"setting": label, "seed": seed, "diverged": True})
                    echo(f"[{suite}] {label} seed {seed}: diverged ({str(e).split(';')[0]})")
                    continue
                records.append(r)
                echo(
                    f"[{suite}] {label} seed {seed}: "
                    + "  ".join(f"{k} {v:.2f}" for k, v in r.items() if k not in ("setting", "seed", "collapsed"))
                    + ("  COLLAPSED" if r.get("collapsed") else "")
                )
        what = ", ".join(cfg.datasets) if protocol == "base2new" else f"{cfg.source} -> {', '.join(cfg.targets)}"
        title = f"Ablation '{suite}' ({protocol}, {cfg.model}, {what}; {len(cfg.seeds)} seeds)"
        table = settings_table(records, protocol, title)
        tables[suite] = table
        if exp.dist.is_main:
            write(table, out, suite)
            plot_ablation(table, "setting", out / f"{suite}.png")
            atomic_write_text(out / SETTINGS_FILE, OmegaConf.to_yaml(cfg))
            echo(table.to_terminal())
            echo(f"tables: {out}/{suite}.{{md,csv,json,png}}")
    return tables
