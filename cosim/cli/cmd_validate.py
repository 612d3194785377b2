"""`cosim validate`: predicted vs measured on published measurements, per-group errors, calibration."""

from __future__ import annotations

from pathlib import Path

import typer

from cosim.cli.output import check_format, print_csv, print_json, print_table


def register(app: typer.Typer) -> None:
    @app.command("validate")
    def validate_cmd(
        filter_expr: str = typer.Option(None, "--filter", help="key=value, key!=value or key~text, comma-separated "
                                        "over columns such as hardware, workload, metric, vendor, workload_class, "
                                        "source_class, reliability (e.g. --filter hardware=h200-sxm)"),
        uncalibrated: bool = typer.Option(False, "--uncalibrated", help="first-principles defaults, no calibration"),
        fmt: str = typer.Option("table", "--format", help="table | json | csv"),
        calibrate: bool = typer.Option(False, "--calibrate", help="refit the calibration (minutes), write "
                                       "cosim/data/calibration.yaml, then validate"),
        report_dir: Path = typer.Option(Path("reports"), "--report-dir", help="where validation.md and the plot go "
                                        "(an --uncalibrated run writes to its uncalibrated/ subfolder)"),
        no_report: bool = typer.Option(False, "--no-report", help="do not write the report files"),
        check: bool = typer.Option(False, "--check-thresholds", help="exit 1 if any group's median error worsened "
                                   "beyond cosim/data/validation_thresholds.yaml"),
        update_thresholds: bool = typer.Option(False, "--update-thresholds", help="store the current per-group "
                                               "medians (+ margin) as the regression thresholds"),
        reference: Path = typer.Option(None, "--reference", help="another measurements YAML (same schema as "
                                       "cosim/data/reference/measurements.yaml); rows match the mapping by id"),
    ) -> None:
        """Score cosim's predictions against published measurements (MLPerf, TensorRT-LLM, video, training).

        JSON: {"rows": [{id, predicted, measured, error, ...}], "summary": [{group_by, group, count,
        median_abs_error, mape, worst_error, worst_id}], "unmapped": [{id, reason}], "calibrated": bool,
        "targets": [{target, count, cv_median_abs_error, cv_worst_error, target_median_abs_error,
        target_worst_abs_error, met}] and "misses": [{target, id, hardware, workload, error, family, cause, tried, see}]
        (the rows beyond a target's worst-case bound, with the stated cause of their family; calibrated runs),
        "hardware_ratios": [{query, faster, slower, rows,
        measured_ratio, predicted_ratio, error}] (the same query on two chips, per chip)}.
        error = predicted / measured - 1.
        """
        import sys

        from cosim.validate import run_validation
        from cosim.validate.gate import check_thresholds, write_thresholds

        check_format(fmt)
        cv = None
        calibration = None
        if calibrate:
            from cosim.validate.fit import calibrate as do_calibrate

            calibration, _ = do_calibrate()
            cv = _stored_cv()
        else:
            from cosim.engines.calibration import load_calibration

            calibration = load_calibration()
        report = run_validation(filter_expr, uncalibrated=uncalibrated,
                                reference=str(reference) if reference else None)
        if not no_report and not filter_expr and not reference:
            from cosim.validate.report import write_report

            if cv is None:
                cv = _stored_cv()
            # the first-principles report never replaces the calibrated one that reports/ keeps
            out_dir = report_dir / "uncalibrated" if uncalibrated else report_dir
            path = write_report(report, out_dir, cv=cv, calibration=None if uncalibrated else calibration)
            print(f"wrote {path}", file=sys.stderr)
        if update_thresholds:
            write_thresholds(report.summary)
            print("updated cosim/data/validation_thresholds.yaml", file=sys.stderr)
        targets = misses = None
        if report.calibrated and not reference:
            from cosim.validate.misses import target_misses
            from cosim.validate.targets import target_table

            targets = target_table()
            misses = target_misses()
        if fmt == "json":
            from cosim.validate.ratios import hardware_ratios

            doc = {"calibrated": report.calibrated, "rows": report.rows.to_dict(orient="records"),
                   "summary": report.summary.to_dict(orient="records"),
                   "unmapped": report.unmapped.to_dict(orient="records")}
            if targets is not None:
                doc["targets"] = targets.to_dict(orient="records")
                doc["misses"] = misses.to_dict(orient="records")
            doc["hardware_ratios"] = hardware_ratios(report.rows).to_dict(orient="records")
            print_json(doc)
        elif fmt == "csv":
            print_csv(report.rows)
        else:
            print_table(report.rows[["id", "hardware", "workload", "metric", "predicted", "measured", "error"]],
                        title="predicted vs measured (error = predicted / measured - 1)")
            print_table(report.summary, title="error by group")
            if targets is not None:
                print_table(targets, title="targets (cross-validated, leave-one-out)")
                if len(misses):
                    print_table(misses[["id", "error", "family", "see"]],
                                title="rows beyond the worst-case target (causes: cosim/data/reference/known_misses.yaml)")
        if check:
            problems = check_thresholds(report.summary)
            for line in problems:
                print(f"accuracy regression: {line}", file=sys.stderr)
            if problems:
                raise typer.Exit(1)


def _stored_cv():
    """The cross-validated error table from the stored calibration's LOO errors (None before a fit)."""
    import pandas as pd

    from cosim.engines.calibration import load_calibration
    from cosim.validate.runner import base_table, summarize

    errs = load_calibration().get("loo_errors") or {}
    if not errs:
        return None
    meta = base_table()
    meta = meta[meta["id"].isin(errs)].copy()
    meta["error"] = meta["id"].map(errs)
    meta["predicted"] = meta["measured"] * (1 + meta["error"])
    return summarize(pd.DataFrame(meta))
