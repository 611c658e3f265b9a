"""Reports for any method: colours and markers stable by name, INVALID points hollow, tables in
markdown, CSV and LaTeX, figures in PNG, PDF and SVG."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from vidbench.report import export_tables
from vidbench.report.plots import curve, figure_formats, method_style, save


def test_each_method_keeps_its_colour_and_each_variant_its_marker() -> None:
    assert method_style("frame") == method_style("frame")
    assert method_style("prop-mv:fusion=avg")["color"] == method_style("prop-mv")["color"]
    assert method_style("my-method:x=1") == method_style("my-method:x=1")
    colours = {
        tuple(method_style(m)["color"]) for m in ("frame", "prop-flow", "prop-mv", "interp-mv")
    }
    assert len(colours) == 4  # the built-in methods never share a colour


def test_invalid_points_are_drawn_hollow() -> None:
    df = pd.DataFrame(
        [
            {
                "scheme": "prop-mv",
                "interval": 1,
                "steady_fps": 10.0,
                "miou_avg": 50.0,
                "validity": "VALID",
            },
            {
                "scheme": "prop-mv",
                "interval": 5,
                "steady_fps": 30.0,
                "miou_avg": 45.0,
                "validity": "INVALID",
            },
        ]
    )
    figure = curve(df, "miou_avg", "mIoU")
    faces = [
        line.get_markerfacecolor() for line in figure.axes[0].lines if line.get_marker() == "o"
    ]
    assert "none" in faces and any(f != "none" for f in faces)
    assert "INVALID" in figure.axes[0].get_title()
    plt.close(figure)


def test_tables_as_latex_and_figures_in_every_format(tmp_path: Path) -> None:
    csv = tmp_path / "table1.csv"
    pd.DataFrame({"scheme": ["frame"], "fps": [12.5]}).to_csv(csv, index=False)
    extra = export_tables({"table_csv": csv}, ("md", "csv", "tex"))
    assert "\\begin{tabular}" in extra["table_csv_tex"].read_text()
    with pytest.raises(ValueError, match="allowed: md, csv, tex"):
        export_tables({}, ("docx",))
    figure, _ = plt.subplots()
    with figure_formats(["svg", "pdf"]):
        save(figure, tmp_path / "curve.png")
    assert all((tmp_path / f"curve.{s}").stat().st_size > 0 for s in ("png", "svg", "pdf"))
    with pytest.raises(ValueError, match="allowed: png, pdf, svg"), figure_formats(["gif"]):
        pass
