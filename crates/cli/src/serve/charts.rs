//! Charts drawn on the server as SVG (plotters' SVG backend, no fonts loaded: the browser renders
//! the text), so a page is complete as sent.
//!
//! The x axis is an ordinal (one step per session, or per bar), so nights, weekends and holidays
//! leave no empty stretches.

use plotters::prelude::*;

/// One line of a time-series chart.
pub struct Series<'a> {
    pub name: &'a str,
    pub values: Vec<Option<f64>>,
    pub color: RGBColor,
}

pub const BLUE: RGBColor = RGBColor(9, 105, 218);
pub const ORANGE: RGBColor = RGBColor(188, 76, 0);
pub const PURPLE: RGBColor = RGBColor(130, 80, 223);
pub const GREY: RGBColor = RGBColor(110, 119, 129);
pub const RED_MARK: RGBColor = RGBColor(207, 34, 46);

/// How a chart's y axis is scaled.
#[derive(Debug, Clone, Copy)]
pub enum Scale {
    /// From 0 (or the data's minimum if negative) to the data's maximum, at least this.
    FromZero(f64),
    /// Around the data (a rate near 1 shows its dips).
    Data,
}

/// Lines over the labelled x positions (`labels[i]` names point `i`).
pub fn lines(title: &str, labels: &[String], series: &[Series<'_>], scale: Scale, size: (u32, u32)) -> String {
    render(size, |root| {
        let values = series.iter().flat_map(|s| s.values.iter().flatten().copied());
        let (lo, hi) = match scale {
            Scale::FromZero(min_top) => values.fold((0f64, min_top), |(lo, hi), v| (lo.min(v), hi.max(v))),
            Scale::Data => {
                let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
                if lo.is_finite() { (lo - (hi - lo).max(1e-3) * 0.1, hi) } else { (0.0, 1.0) }
            }
        };
        let top = if hi > lo { hi + (hi - lo) * 0.08 } else { lo + 1.0 };
        let n = labels.len().max(2);
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(34)
            .y_label_area_size(56)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), lo..top)?;
        let label = |x: &f64| {
            let i = x.round();
            if (x - i).abs() > 1e-9 || i < 0.0 {
                String::new()
            } else {
                labels.get(i as usize).cloned().unwrap_or_default()
            }
        };
        chart
            .configure_mesh()
            .x_labels(labels.len().clamp(2, 8))
            .x_label_formatter(&label)
            .y_label_formatter(&|y| short(*y))
            .light_line_style(WHITE)
            .draw()?;
        for s in series {
            let points: Vec<(f64, f64)> =
                s.values.iter().enumerate().filter_map(|(i, v)| v.map(|v| (i as f64, v))).collect();
            let color = s.color;
            chart
                .draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))?
                .label(s.name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
            chart.draw_series(points.iter().map(|&(x, y)| Circle::new((x, y), 2, color.filled())))?;
        }
        if series.len() > 1 {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(GREY)
                .draw()?;
        }
        Ok(())
    })
}

/// A price line over bars, with the gap bars (filled minutes) marked grey and the outliers red.
pub struct PricePoint {
    pub label: String,
    pub close: f64,
    pub gap: bool,
    pub outlier: bool,
}

pub fn prices(title: &str, points: &[PricePoint], size: (u32, u32)) -> String {
    render(size, |root| {
        let (lo, hi) =
            points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(p.close), hi.max(p.close)));
        let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
        let pad = ((hi - lo) * 0.06).max(hi.abs() * 1e-4).max(1e-6);
        let n = points.len().max(2);
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(34)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..(n as f64 - 1.0), (lo - pad)..(hi + pad))?;
        let label = |x: &f64| {
            let i = x.round();
            if (x - i).abs() > 1e-9 || i < 0.0 {
                String::new()
            } else {
                points.get(i as usize).map(|p| p.label.clone()).unwrap_or_default()
            }
        };
        chart
            .configure_mesh()
            .x_labels(7)
            .x_label_formatter(&label)
            .y_label_formatter(&|y| format!("{y:.2}"))
            .light_line_style(WHITE)
            .draw()?;
        chart
            .draw_series(LineSeries::new(
                points.iter().enumerate().map(|(i, p)| (i as f64, p.close)),
                BLUE.stroke_width(1),
            ))?
            .label("close")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE.stroke_width(2)));
        chart
            .draw_series(
                points
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.gap)
                    .map(|(i, p)| Circle::new((i as f64, p.close), 2, GREY.filled())),
            )?
            .label("gap (filled)")
            .legend(|(x, y)| Circle::new((x + 8, y), 3, GREY.filled()));
        chart
            .draw_series(
                points
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.outlier)
                    .map(|(i, p)| Circle::new((i as f64, p.close), 4, RED_MARK.filled())),
            )?
            .label("outlier")
            .legend(|(x, y)| Circle::new((x + 8, y), 4, RED_MARK.filled()));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(GREY)
            .draw()?;
        Ok(())
    })
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Draws into an SVG string; a drawing error becomes a visible message instead of a chart.
fn render(
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> DrawResult,
) -> String {
    let mut svg = String::new();
    let outcome = {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| e.to_string())
            .and_then(|_| draw(&root).map_err(|e| e.to_string()))
            .and_then(|_| root.present().map_err(|e| e.to_string()))
    };
    match outcome {
        Ok(()) => svg,
        Err(e) => {
            tracing::warn!("dashboard: a chart could not be drawn: {e}");
            format!("<p class=\"error\">chart not drawn: {}</p>", maud::html! { (e) }.into_string())
        }
    }
}

/// 0.0123 -> "0.0123", 12345 -> "12.3k".
fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 10.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_chart_is_an_svg_with_its_title_and_labels() {
        let labels: Vec<String> = ["2024-01-02", "2024-01-03", "2024-01-04"].map(String::from).to_vec();
        let svg = lines(
            "gap rate",
            &labels,
            &[Series { name: "gap rate", values: vec![Some(0.0), None, Some(0.02)], color: BLUE }],
            Scale::FromZero(0.01),
            (480, 240),
        );
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("gap rate") && svg.contains("2024-01-02"), "{svg}");
        assert!(svg.contains("<polyline") || svg.contains("<path"), "no line drawn: {svg}");
    }

    #[test]
    fn a_price_chart_marks_gaps_and_outliers() {
        let p = |close, gap, outlier| PricePoint { label: "09:30".into(), close, gap, outlier };
        let svg = prices("AAPL", &[p(100.0, false, false), p(100.5, true, false), p(130.0, false, true)], (480, 240));
        assert!(svg.contains("outlier") && svg.contains("gap (filled)"), "{svg}");
        // One red dot for the outlier (plus the legend's).
        assert_eq!(svg.matches("#CF222E").count() + svg.matches("#cf222e").count(), 2, "{svg}");
    }

    #[test]
    fn short_numbers() {
        assert_eq!(short(12345.0), "12.3k");
        assert_eq!(short(0.01234), "0.0123");
        assert_eq!(short(0.0), "0");
    }
}
