//! SVG plots beside the Markdown report, drawn with plotters' SVG backend. Text is emitted as
//! SVG `<text>` elements (plotters' built-in naive font metrics), so no system font or `ttf`
//! feature is needed and the output is byte-for-byte reproducible.

use super::error::ReportError;
use super::format::{fmt_num, unit_of};
use super::types::{Report, RowClass, CONVERGENCE_FILE, PARETO_FILE};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

const SIZE: (u32, u32) = (860, 480);
/// Room right of the plot for the legend, so it never hides a point.
const LEGEND_WIDTH: u32 = 190;
const OK_COLOR: RGBColor = RGBColor(31, 119, 180);
const INFEASIBLE_COLOR: RGBColor = RGBColor(255, 127, 14);
const FAILED_COLOR: RGBColor = RGBColor(214, 39, 40);
const BEST_COLOR: RGBColor = RGBColor(44, 160, 44);
const OTHER_COLOR: RGBColor = RGBColor(150, 150, 150);

fn plot_err(file: &'static str) -> impl Fn(String) -> ReportError {
    move |message| ReportError::Plot { file, message }
}

/// The chart both plots draw on: caption, margins, label areas and the data ranges.
fn new_chart<'a, 'b>(
    plot: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    caption: String,
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
) -> Result<ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>, String> {
    ChartBuilder::on(plot)
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| e.to_string())
}

/// Largest magnitude an axis reaches. plotters computes the axis ticks from the span of the
/// range and loops forever when that span is infinite (a program printing -1e308 and 1e308:
/// issue 14, a report that never finished); values beyond it are drawn at its edge (`on_axis`).
const AXIS_LIMIT: f64 = 1e300;

/// A value as it is drawn: within `AXIS_LIMIT`.
fn on_axis(v: f64) -> f64 {
    v.clamp(-AXIS_LIMIT, AXIS_LIMIT)
}

/// A padded axis range that is never empty, with a finite span.
fn padded(lo: f64, hi: f64) -> (f64, f64) {
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    let (lo, hi) = (on_axis(lo), on_axis(hi));
    let span = hi - lo;
    let pad = if span > 0.0 {
        span * 0.08
    } else {
        lo.abs().max(1.0) * 0.05
    };
    (lo - pad, hi + pad)
}

fn axis_label(r: &Report) -> String {
    let label = r.objective_label();
    match unit_of(&r.meta.objective.metric.metric) {
        "" => label,
        u => format!("{label} ({u})"),
    }
}

/// A legend entry's marker.
#[derive(Clone, Copy)]
enum Mark {
    Line(RGBColor),
    Dot(RGBColor),
    Ring(RGBColor),
    Cross(RGBColor),
}

/// Draw the legend in its own area right of the chart, so it never hides a point.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    entries: &[(Mark, &str)],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let style = ("sans-serif", 13).into_font().color(&BLACK);
    for (i, (mark, text)) in entries.iter().enumerate() {
        let y = 70 + 24 * i as i32;
        let x = 12;
        match *mark {
            Mark::Line(c) => area.draw(&PathElement::new(
                vec![(x - 8, y), (x + 8, y)],
                c.stroke_width(2),
            ))?,
            Mark::Dot(c) => area.draw(&Circle::new((x, y), 4, c.filled()))?,
            Mark::Ring(c) => area.draw(&Circle::new((x, y), 4, c.stroke_width(2)))?,
            Mark::Cross(c) => area.draw(&Cross::new((x, y), 5, c.stroke_width(2)))?,
        }
        area.draw(&Text::new(text.to_string(), (x + 16, y - 7), style.clone()))?;
    }
    Ok(())
}

fn caption_suffix(r: &Report) -> &'static str {
    if r.meta.backend.simulated {
        " [SIMULATED]"
    } else {
        ""
    }
}

/// Best-so-far objective against trial number, with every trial that ran as a point (hollow
/// when it violated a constraint) and failures as crosses along the bottom.
pub fn convergence_svg(r: &Report) -> Result<String, ReportError> {
    let err = plot_err(CONVERGENCE_FILE);
    let pts = &r.convergence;
    let values: Vec<f64> = pts
        .iter()
        .filter_map(|p| p.objective)
        .filter(|v| v.is_finite())
        .collect();
    let (y0, y1) = padded(
        values.iter().copied().fold(f64::INFINITY, f64::min),
        values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    let last = pts.iter().map(|p| p.trial).max().unwrap_or(0) as f64;
    let (x0, x1) = (-0.5, last + 0.5);
    let direction = if r.maximize() {
        "higher is better"
    } else {
        "lower is better"
    };

    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let (plot, side) = root.split_horizontally(SIZE.0 - LEGEND_WIDTH);
        let mut legend: Vec<(Mark, &str)> = Vec::new();
        let caption = format!(
            "Best {} so far ({direction}){}",
            r.objective_label(),
            caption_suffix(r)
        );
        let mut chart = new_chart(&plot, caption, (x0, x1), (y0, y1)).map_err(&err)?;
        let xfmt = |x: &f64| format!("{}", x.round() as i64);
        let yfmt = |y: &f64| fmt_num(*y);
        chart
            .configure_mesh()
            .x_desc("trial")
            .y_desc(axis_label(r))
            .x_label_formatter(&xfmt)
            .y_label_formatter(&yfmt)
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|e| err(e.to_string()))?;

        // Best-so-far as a step line over the trials where it is defined.
        let mut steps: Vec<(f64, f64)> = Vec::new();
        for p in pts {
            if let Some(b) = p.best_so_far {
                let x = p.trial as f64;
                if let Some(&(_, prev)) = steps.last() {
                    steps.push((x, prev));
                }
                steps.push((x, on_axis(b)));
            }
        }
        if let Some(&(_, b)) = steps.last() {
            steps.push((x1, b));
        }
        if !steps.is_empty() {
            chart
                .draw_series(LineSeries::new(steps, BEST_COLOR.stroke_width(2)))
                .map_err(|e| err(e.to_string()))?;
            legend.push((Mark::Line(BEST_COLOR), "best so far"));
        }
        let feasible: Vec<(f64, f64)> = pts
            .iter()
            .filter(|p| p.class == RowClass::Feasible)
            .filter_map(|p| p.objective.map(|v| (p.trial as f64, on_axis(v))))
            .collect();
        if !feasible.is_empty() {
            chart
                .draw_series(
                    feasible
                        .into_iter()
                        .map(|c| Circle::new(c, 4, OK_COLOR.filled())),
                )
                .map_err(|e| err(e.to_string()))?;
            legend.push((Mark::Dot(OK_COLOR), "ran, met the constraints"));
        }
        let infeasible: Vec<(f64, f64)> = pts
            .iter()
            .filter(|p| p.class == RowClass::Infeasible)
            .filter_map(|p| p.objective.map(|v| (p.trial as f64, on_axis(v))))
            .collect();
        if !infeasible.is_empty() {
            chart
                .draw_series(
                    infeasible
                        .into_iter()
                        .map(|c| Circle::new(c, 4, INFEASIBLE_COLOR.stroke_width(2))),
                )
                .map_err(|e| err(e.to_string()))?;
            legend.push((Mark::Ring(INFEASIBLE_COLOR), "violated a constraint"));
        }
        let failed: Vec<(f64, f64)> = pts
            .iter()
            .filter(|p| p.class == RowClass::Failed)
            .map(|p| (p.trial as f64, y0 + (y1 - y0) * 0.03))
            .collect();
        if !failed.is_empty() {
            chart
                .draw_series(
                    failed
                        .into_iter()
                        .map(|c| Cross::new(c, 5, FAILED_COLOR.stroke_width(2))),
                )
                .map_err(|e| err(e.to_string()))?;
            legend.push((Mark::Cross(FAILED_COLOR), "failed"));
        }
        draw_legend(&side, &legend).map_err(|e| err(e.to_string()))?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    Ok(buf)
}

/// Objective against median TTFT over the feasible trials, the Pareto front joined and labelled
/// with trial numbers. None when the report has no Pareto front (TTFT not measured).
pub fn pareto_svg(r: &Report) -> Result<Option<String>, ReportError> {
    let Some(p) = &r.pareto else {
        return Ok(None);
    };
    let err = plot_err(PARETO_FILE);
    let xs: Vec<f64> = p.points.iter().map(|q| q.ttft_p50).collect();
    let ys: Vec<f64> = p.points.iter().map(|q| q.objective).collect();
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = |v: &[f64]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (x0, x1) = padded(min(&xs), max(&xs));
    let (y0, y1) = padded(min(&ys), max(&ys));

    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let (plot, side) = root.split_horizontally(SIZE.0 - LEGEND_WIDTH);
        let mut legend: Vec<(Mark, &str)> = Vec::new();
        let caption = format!(
            "{} against TTFT: Pareto front{}",
            r.objective_label(),
            caption_suffix(r)
        );
        let mut chart = new_chart(&plot, caption, (x0, x1), (y0, y1)).map_err(&err)?;
        let fmt = |v: &f64| fmt_num(*v);
        chart
            .configure_mesh()
            .x_desc("TTFT p50 (s)")
            .y_desc(axis_label(r))
            .x_label_formatter(&fmt)
            .y_label_formatter(&fmt)
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|e| err(e.to_string()))?;

        let others: Vec<(f64, f64)> = p
            .points
            .iter()
            .filter(|q| !q.on_front)
            .map(|q| (on_axis(q.ttft_p50), on_axis(q.objective)))
            .collect();
        if !others.is_empty() {
            chart
                .draw_series(
                    others
                        .into_iter()
                        .map(|c| Circle::new(c, 4, OTHER_COLOR.filled())),
                )
                .map_err(|e| err(e.to_string()))?;
            legend.push((Mark::Dot(OTHER_COLOR), "dominated"));
        }
        let front = p.front();
        let line: Vec<(f64, f64)> = front
            .iter()
            .map(|q| (on_axis(q.ttft_p50), on_axis(q.objective)))
            .collect();
        chart
            .draw_series(LineSeries::new(line.clone(), FAILED_COLOR.stroke_width(1)))
            .map_err(|e| err(e.to_string()))?;
        chart
            .draw_series(
                line.iter()
                    .map(|&c| Circle::new(c, 5, FAILED_COLOR.filled())),
            )
            .map_err(|e| err(e.to_string()))?;
        legend.push((Mark::Dot(FAILED_COLOR), "Pareto front"));
        chart
            .draw_series(front.iter().map(|q| {
                EmptyElement::at((on_axis(q.ttft_p50), on_axis(q.objective)))
                    + Text::new(
                        format!("#{}", q.trial),
                        (7, -16),
                        ("sans-serif", 13).into_font(),
                    )
            }))
            .map_err(|e| err(e.to_string()))?;
        draw_legend(&side, &legend).map_err(|e| err(e.to_string()))?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    Ok(Some(buf))
}
