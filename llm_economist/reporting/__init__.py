"""Tables, PNG figures and the Markdown report of a finished run directory."""

from .plots import (
    plot_final_schedules,
    plot_hours_distribution,
    plot_lorenz_curves,
    plot_parameters_over_time,
    plot_welfare_over_time,
)
from .report import comparison_table, markdown_table, parameter_table, write_report

__all__ = [
    "write_report", "comparison_table", "parameter_table", "markdown_table",
    "plot_welfare_over_time", "plot_final_schedules", "plot_hours_distribution", "plot_lorenz_curves",
    "plot_parameters_over_time",
]
