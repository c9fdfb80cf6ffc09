//! `synwallctl report --svg FILE`: the `report` reply drawn with plotters'
//! SVG backend. One row per chart (every customer, then each plan): per
//! window a histogram of the customers' peaks with the current and the
//! suggested limit drawn in, then the series of the customers with the
//! highest peaks in the shortest window, beside the same two limits.
//!
//! Each limit line and each customer's series is a coloured polyline
//! followed at once by its label (`current 100`, `suggested 40`, the
//! customer's name), so a reader of the file (and the tests) can tell
//! them apart; the axes are black.
use std::error::Error;

use plotters::prelude::*;
use serde::Deserialize;

/// The `report` reply, as far as the picture needs it.
#[derive(Debug, Clone, Deserialize)]
pub struct Report {
    pub from: String,
    pub to: String,
    pub step_minutes: u64,
    /// The window the series show (the shortest).
    pub window: String,
    pub charts: Vec<Chart>,
}

/// One plan's chart (`plan` null: every customer, the default limits).
#[derive(Debug, Clone, Deserialize)]
pub struct Chart {
    pub plan: Option<String>,
    pub customers: usize,
    pub windows: Vec<WindowPeaks>,
    pub top: Vec<Top>,
}

/// One window: every customer's peak, the current and suggested limits.
#[derive(Debug, Clone, Deserialize)]
pub struct WindowPeaks {
    pub window: String,
    pub current: u64,
    pub suggested: u64,
    pub peaks: Vec<u64>,
}

/// A customer with one of the highest peaks, and its steps.
#[derive(Debug, Clone, Deserialize)]
pub struct Top {
    pub customer: String,
    pub steps: Vec<Point>,
}

/// One step of a series: its start and the peak in it.
#[derive(Debug, Clone, Deserialize)]
pub struct Point {
    pub start: String,
    pub peak: u64,
}

/// A panel's size in pixels.
const PANEL: (u32, u32) = (440, 380);
/// Bars of a peaks histogram.
const BINS: usize = 20;
const FONT: &str = "sans-serif";

/// The chart's title: the plan, or every customer.
pub fn title(chart: &Chart) -> String {
    match &chart.plan {
        Some(p) => format!("plan {p}"),
        None => "all customers".to_owned(),
    }
}

/// The picture, as an SVG document.
pub fn svg(report: &Report) -> Result<String, String> {
    let cols = report
        .charts
        .iter()
        .map(|c| c.windows.len() + 1)
        .max()
        .unwrap_or(1);
    let rows = report.charts.len().max(1);
    let size = (PANEL.0 * cols as u32, PANEL.1 * rows as u32);
    let mut out = String::new();
    draw(report, &mut out, size, cols).map_err(|e| format!("drawing the report: {e}"))?;
    Ok(out)
}

fn draw(
    report: &Report,
    out: &mut String,
    size: (u32, u32),
    cols: usize,
) -> Result<(), Box<dyn Error>> {
    let root = SVGBackend::with_string(out, size).into_drawing_area();
    root.fill(&WHITE)?;
    let rows = root.split_evenly((report.charts.len().max(1), 1));
    for (chart, row) in report.charts.iter().zip(&rows) {
        let row = row.titled(
            &format!(
                "{}  ({} customers with history, {} to {})",
                title(chart),
                chart.customers,
                report.from,
                report.to
            ),
            (FONT, 20),
        )?;
        let panels = row.split_evenly((1, cols));
        for (w, panel) in chart.windows.iter().zip(&panels) {
            peaks_panel(panel, w)?;
        }
        let series = panels.get(chart.windows.len());
        if let (Some(panel), Some(w), false) = (series, chart.windows.first(), chart.top.is_empty())
        {
            series_panel(panel, report, chart, w)?;
        }
    }
    root.present()?;
    Ok(())
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// The limits drawn in each panel: name, value, colour.
fn limits(w: &WindowPeaks) -> [(&'static str, u64, RGBColor); 2] {
    [
        ("current", w.current, RED),
        ("suggested", w.suggested, RGBColor(0, 128, 0)),
    ]
}

/// A histogram of one window's peaks, with the two limits as vertical
/// lines.
fn peaks_panel(panel: &Area, w: &WindowPeaks) -> Result<(), Box<dyn Error>> {
    let top = w
        .peaks
        .iter()
        .copied()
        .chain([w.current, w.suggested])
        .max()
        .unwrap_or(0);
    let x_max = top as f64 * 1.1 + 1.0;
    let width = x_max / BINS as f64;
    let mut counts = [0u32; BINS];
    for &p in &w.peaks {
        counts[((p as f64 / width) as usize).min(BINS - 1)] += 1;
    }
    let y_max = f64::from(counts.iter().copied().max().unwrap_or(0)) * 1.25 + 1.0;
    let mut chart = ChartBuilder::on(panel)
        .caption(
            format!("{}: peaks of {} customers", w.window, w.peaks.len()),
            (FONT, 15),
        )
        .margin(8)
        .x_label_area_size(32)
        .y_label_area_size(40)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc(format!("most SYNs in any {}", w.window))
        .y_desc("customers")
        .x_labels(5)
        .y_labels((y_max as usize + 1).min(10))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    chart.draw_series(
        counts
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(i, &n)| {
                let x0 = i as f64 * width;
                Rectangle::new(
                    [(x0, 0.0), (x0 + width, f64::from(n))],
                    BLUE.mix(0.5).filled(),
                )
            }),
    )?;
    for (i, (name, value, colour)) in limits(w).into_iter().enumerate() {
        let x = value as f64;
        chart.draw_series(LineSeries::new(
            [(x, 0.0), (x, y_max)],
            colour.stroke_width(2),
        ))?;
        chart.draw_series(std::iter::once(Text::new(
            format!("{name} {value}"),
            (x, y_max * (0.97 - 0.08 * i as f64)),
            (FONT, 13).into_font().color(&colour),
        )))?;
    }
    Ok(())
}

/// The top customers' peaks step by step, with the shortest window's two
/// limits as horizontal lines.
fn series_panel(
    panel: &Area,
    report: &Report,
    chart: &Chart,
    w: &WindowPeaks,
) -> Result<(), Box<dyn Error>> {
    let steps = chart.top.iter().map(|t| t.steps.len()).max().unwrap_or(0);
    let x_max = steps.saturating_sub(1).max(1) as f64;
    let top = chart
        .top
        .iter()
        .flat_map(|t| t.steps.iter().map(|p| p.peak))
        .chain([w.current, w.suggested])
        .max()
        .unwrap_or(0);
    let y_max = top as f64 * 1.15 + 1.0;
    let starts: Vec<String> = chart
        .top
        .iter()
        .max_by_key(|t| t.steps.len())
        .map(|t| t.steps.iter().map(|p| short_time(&p.start)).collect())
        .unwrap_or_default();
    let mut drawn = ChartBuilder::on(panel)
        .caption(
            format!(
                "top {} by peak in {}, {}-minute steps",
                chart.top.len(),
                report.window,
                report.step_minutes
            ),
            (FONT, 15),
        )
        .margin(8)
        .x_label_area_size(32)
        .y_label_area_size(48)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
    drawn
        .configure_mesh()
        .x_labels(4)
        .x_label_formatter(&|x| {
            starts
                .get(x.round().max(0.0) as usize)
                .cloned()
                .unwrap_or_default()
        })
        .y_label_formatter(&|y| format!("{y:.0}"))
        .y_desc(format!("most SYNs in any {}", report.window))
        .draw()?;
    for (name, value, colour) in limits(w) {
        let y = value as f64;
        drawn.draw_series(LineSeries::new(
            [(0.0, y), (x_max, y)],
            colour.stroke_width(1),
        ))?;
        drawn.draw_series(std::iter::once(Text::new(
            format!("{name} {value}"),
            (0.0, y),
            (FONT, 12).into_font().color(&colour),
        )))?;
    }
    for (i, t) in chart.top.iter().enumerate() {
        let colour = Palette99::pick(i);
        let points: Vec<(f64, f64)> = t
            .steps
            .iter()
            .enumerate()
            .map(|(x, p)| (x as f64, p.peak as f64))
            .collect();
        let last = points.last().copied().unwrap_or((0.0, 0.0));
        drawn.draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))?;
        drawn.draw_series(std::iter::once(Text::new(
            t.customer.clone(),
            last,
            (FONT, 12).into_font().color(&colour),
        )))?;
        // Marks, after the label, so that a one-step series shows.
        drawn.draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))?;
    }
    Ok(())
}

/// `2026-12-06T20:59:00.000Z` as `12-06 20:59`.
fn short_time(rfc3339: &str) -> String {
    rfc3339
        .get(5..16)
        .map(|s| s.replace('T', " "))
        .unwrap_or_else(|| rfc3339.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed() -> Report {
        let point = |m: u32, peak| Point {
            start: format!("2026-12-06T20:{m:02}:00.000Z"),
            peak,
        };
        let windows = |current, suggested| {
            vec![
                WindowPeaks {
                    window: "5m".into(),
                    current,
                    suggested,
                    peaks: vec![1000, 40, 10, 10],
                },
                WindowPeaks {
                    window: "1h".into(),
                    current: 5000,
                    suggested: 2000,
                    peaks: vec![1000, 40, 10, 10],
                },
            ]
        };
        Report {
            from: "2026-12-06T20:00:00.000Z".into(),
            to: "2026-12-06T20:03:00.000Z".into(),
            step_minutes: 1,
            window: "5m".into(),
            charts: vec![
                Chart {
                    plan: None,
                    customers: 4,
                    windows: windows(100, 800),
                    top: vec![
                        Top {
                            customer: "spam<mer>".into(),
                            steps: vec![point(0, 0), point(1, 1000), point(2, 600)],
                        },
                        Top {
                            customer: "quiet".into(),
                            steps: vec![point(0, 10), point(1, 40), point(2, 40)],
                        },
                    ],
                },
                Chart {
                    plan: Some("gold".into()),
                    customers: 1,
                    windows: windows(300, 80),
                    top: vec![Top {
                        customer: "quiet".into(),
                        steps: vec![point(0, 10), point(1, 40), point(2, 40)],
                    }],
                },
            ],
        }
    }

    /// The coloured polylines (the axes are black) each directly followed
    /// by a text, as (label, points).
    fn labelled(svg: &str) -> Vec<(String, Vec<(f64, f64)>)> {
        let doc = roxmltree::Document::parse(svg).expect("the SVG parses as XML");
        let nodes: Vec<_> = doc
            .root_element()
            .children()
            .filter(|n| n.is_element())
            .collect();
        nodes
            .windows(2)
            .filter(|p| p[0].has_tag_name("polyline") && p[1].has_tag_name("text"))
            .filter(|p| p[0].attribute("stroke") != Some("#000000"))
            .map(|p| {
                let points = p[0]
                    .attribute("points")
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(|xy| {
                        let (x, y) = xy.split_once(',').unwrap();
                        (x.parse().unwrap(), y.parse().unwrap())
                    })
                    .collect();
                (p[1].text().unwrap_or_default().trim().to_owned(), points)
            })
            .collect()
    }

    #[test]
    fn draws_each_chart_with_its_limits_and_series() {
        let svg = svg(&fixed()).unwrap();
        let doc = roxmltree::Document::parse(&svg).expect("XML");
        let texts: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .map(str::trim)
            .collect();
        let titles: Vec<&&str> = texts
            .iter()
            .filter(|t| t.starts_with("all customers") || t.starts_with("plan "))
            .collect();
        assert_eq!(titles.len(), 2, "{texts:?}");
        assert!(
            titles[1].starts_with("plan gold  (1 customers"),
            "{titles:?}"
        );
        let labels: Vec<String> = labelled(&svg).into_iter().map(|l| l.0).collect();
        assert_eq!(
            labels,
            [
                // all customers: 5m, 1h, then the series beside 5m's limits.
                "current 100",
                "suggested 800",
                "current 5000",
                "suggested 2000",
                "current 100",
                "suggested 800",
                "spam<mer>",
                "quiet",
                // plan gold.
                "current 300",
                "suggested 80",
                "current 5000",
                "suggested 2000",
                "current 300",
                "suggested 80",
                "quiet",
            ],
        );
    }

    #[test]
    fn series_points_sit_where_their_peaks_are_on_the_limits_scale() {
        let report = fixed();
        let svg = svg(&report).unwrap();
        let lines = labelled(&svg);
        // The first chart's series panel: its two limit lines give the
        // scale (pixels per SYN), the series must follow it.
        let y_of = |label: &str| lines.iter().skip(4).find(|l| l.0 == label).unwrap().1[0].1;
        let (yc, ys) = (y_of("current 100"), y_of("suggested 800"));
        let per_syn = (yc - ys) / 700.0;
        assert!(per_syn > 0.0);
        for t in &report.charts[0].top {
            let drawn = &lines.iter().find(|l| l.0 == t.customer).unwrap().1;
            assert_eq!(drawn.len(), t.steps.len(), "{}", t.customer);
            for (p, (_, y)) in t.steps.iter().zip(drawn) {
                let want = yc - (p.peak as f64 - 100.0) * per_syn;
                assert!(
                    (want - y).abs() <= 1.0,
                    "{}: {p:?} at {y}, want {want}",
                    t.customer
                );
            }
        }
    }
}
