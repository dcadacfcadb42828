"""robustness.md: the report's tables, from what robustness.json holds."""

from __future__ import annotations

from typing import Any


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def render(report: dict[str, Any]) -> str:
    """The markdown report."""
    clean, base = report["clean"], report["baseline"]
    lines = [
        f"# Robustness of {report['run']} ({report['dataset']}, {report['method']})",
        "",
        f"{report['queries']} queries against a clean gallery of {report['gallery']} samples; "
        f"k = {report['k']}; seed {report['seed']}. Whole report: "
        f"{report['seconds']['total']:.0f} s ({report['machine']['platform']}, torch "
        f"{report['machine']['torch']}, {report['machine']['threads']} threads).",
        "",
        f"Clean: k-NN {_pct(clean['knn_accuracy'])}, linear probe "
        f"{_pct(clean.get('linear_probe_accuracy'))}, Recall@1 {_pct(clean['recall_at_1'])}, "
        f"MAP@R {_pct(clean.get('map_at_r'))}. Baseline ({base['name']}): k-NN "
        f"{_pct(base['clean']['knn_accuracy'])}.",
    ]
    if "corruptions" in report:
        c = report["corruptions"]
        lines += [
            "",
            "## Common corruptions",
            "",
            f"mCE **{_ratio(c['mce'])}**, relative mCE **{_ratio(c['relative_mce'])}** "
            f"(Hendrycks & Dietterich; 100 = the baseline, {base['name']}). Each row: the "
            "mean over severities 1-5; CE = sum_s E_s / sum_s E_s(baseline), E the k-NN error.",
            "",
            "| corruption | k-NN | linear probe | Recall@1 | MAP@R | baseline k-NN | CE | "
            "relative CE |",
            "|---|---|---|---|---|---|---|---|",
        ]
        order = sorted(c["per_corruption"].items(), key=lambda item: -(item[1]["ce"] or 0))
        for name, row in order:
            sev = row["severities"]

            def mean(key: str, rows: list[dict[str, float]] = sev) -> float | None:
                values = [r[key] for r in rows if key in r]
                return sum(values) / len(values) if values else None

            base_mean = sum(row["baseline_knn_accuracy"]) / len(row["baseline_knn_accuracy"])
            lines.append(
                f"| {name} | {_pct(mean('knn_accuracy'))} | {_pct(mean('linear_probe_accuracy'))}"
                f" | {_pct(mean('recall_at_1'))} | {_pct(mean('map_at_r'))} | {_pct(base_mean)} "
                f"| {_ratio(row['ce'])} | {_ratio(row['relative_ce'])} |"
            )
        if c["undefined_ce"] or c["undefined_relative_ce"]:
            lines += ["", f"Undefined (baseline error sum not above zero), left out of the "
                      f"means: CE {c['undefined_ce']}, relative CE "
                      f"{c['undefined_relative_ce']}."]  # fmt: skip
    if "stability" in report:
        st = report["stability"]
        lines += [
            "",
            "## Perturbation stability",
            "",
            f"{st['queries']} queries, sequences of {st['frames']} frames.",
            "",
            "| sequence | flip probability | top-5 overlap |",
            "|---|---|---|",
        ]
        for kind in ("noise", "shift", "brightness"):
            row = st[kind]
            lines.append(
                f"| {kind} | {_pct(row['flip_probability'])} | {_pct(row['top5_overlap'])} |"
            )
    if "adversarial" in report:
        adv = report["adversarial"]
        lines += ["", "## Adversarial examples", "",
                  f"{adv['queries']} queries, {adv['norm']} attacks; eps as a fraction of the "
                  "pixel range. `knn`: cross-entropy of a softmax over negative distances to "
                  "the gallery's class centroids; `retrieval`: pushed away from the clean "
                  "nearest neighbours.", ""]  # fmt: skip
        header = " | ".join(f"{e:g}" for e in adv["eps"])
        lines += [f"| attack (target): k-NN / Recall@1 at eps | {header} |",
                  "|---|" + "---|" * len(adv["eps"])]  # fmt: skip
        for target in ("knn", "retrieval"):
            for name in ("fgsm", "pgd"):
                cells = " | ".join(
                    f"{_pct(r['knn_accuracy'])} / {_pct(r['recall_at_1'])}"
                    for r in adv[target][name]
                )
                lines.append(f"| {name} ({target}) | {cells} |")
        lines.append("")
        for target in ("knn", "retrieval"):
            checks = adv[target]["checks"]
            lines.append(
                f"Checks ({target}): eps = 0 changes nothing: {checks['eps0_unchanged']}; PGD "
                f"does at least as much damage as FGSM: {checks['pgd_at_least_fgsm']}."
            )
    seconds = ", ".join(f"{k} {v:.1f} s" for k, v in report["seconds"].items())
    lines += ["", f"Time: {seconds}.", ""]
    lines += [f"![{name}]({name})" for name in report["figures"]]
    return "\n".join(lines) + "\n"
