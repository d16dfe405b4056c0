//! `charter rollout status --chart`: a rollout drawn as an SVG chart.
//! Top: the plan's eligible share over time, the installed share (healthy
//! reports over the fleet's size, when given) and the instant of a halt.
//! Bottom: healthy and failed reports per wave.

use anyhow::{Result, anyhow};
use charter_release::channel::ChannelPointer;
use jiff::Timestamp;
use plotters::prelude::*;

use super::rollout::Counts;

/// Hours from `start` to `t`.
fn hours(start: Timestamp, t: Timestamp) -> f64 {
    t.duration_since(start).as_secs_f64() / 3600.0
}

/// The chart as SVG text.
pub(super) fn draw(
    p: &ChannelPointer,
    counts: Option<&Counts>,
    fleet_size: Option<u32>,
    now: Timestamp,
) -> Result<String> {
    let r = p.rollout.as_ref().ok_or_else(|| {
        anyhow!(
            "{}/{} has no rollout plan to draw (every host was eligible at once)",
            p.product,
            p.channel
        )
    })?;
    let start = r.start;
    let plan_end = r.waves.last().map_or(0, |w| w.after_secs) as f64 / 3600.0;
    let last_vote = counts
        .and_then(|c| {
            c.votes
                .iter()
                .map(|(t, _)| hours(start, *t))
                .reduce(f64::max)
        })
        .unwrap_or(0.0);
    let x_max = plan_end.max(last_vote).max(hours(start, now)).max(1.0) * 1.05;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 640)).into_drawing_area();
        let e = |e: DrawingAreaErrorKind<_>| anyhow!("cannot draw the chart: {e:?}");
        root.fill(&WHITE).map_err(e)?;
        let (top, bottom) = root.split_vertically(420);
        let title = format!(
            "{}/{} {}: rollout `{}` from {start}",
            p.product, p.channel, p.version, r.plan
        );
        let mut c = ChartBuilder::on(&top)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(48)
            .build_cartesian_2d(0f64..x_max, 0f64..100f64)
            .map_err(e)?;
        c.configure_mesh()
            .x_desc("hours since the start")
            .y_desc("% of hosts")
            .draw()
            .map_err(e)?;
        let steps = 400;
        let plan: Vec<(f64, f64)> = (0..=steps)
            .map(|i| {
                let h = x_max * f64::from(i) / f64::from(steps);
                let t = start
                    .checked_add(jiff::SignedDuration::from_secs_f64(h * 3600.0))
                    .unwrap_or(start);
                (h, r.share_at(t))
            })
            .collect();
        c.draw_series(LineSeries::new(plan, BLUE.stroke_width(2)))
            .map_err(e)?
            .label("plan: eligible share")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        if let (Some(c0), Some(n)) = (counts, fleet_size.filter(|n| *n > 0)) {
            let mut healthy = 0u32;
            let mut line = vec![(0.0, 0.0)];
            for (t, failed) in &c0.votes {
                if !failed {
                    healthy += 1;
                    line.push((hours(start, *t), 100.0 * f64::from(healthy) / f64::from(n)));
                }
            }
            c.draw_series(LineSeries::new(line, GREEN.stroke_width(2)))
                .map_err(e)?
                .label(format!("installed and healthy (of {n} hosts)"))
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREEN));
        }
        if let Some(h) = &r.halted {
            let x = hours(start, h.at);
            c.draw_series(LineSeries::new(
                vec![(x, 0.0), (x, 100.0)],
                RED.stroke_width(2),
            ))
            .map_err(e)?
            .label(format!("halted at {}: {}", h.at, h.reason))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
        }
        c.configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(e)?;

        let waves = r.waves.len() as u32;
        let y_max = counts
            .map(|c| c.waves.values().map(|w| w.total()).max().unwrap_or(0))
            .unwrap_or(0)
            .max(1);
        let mut b = ChartBuilder::on(&bottom)
            .caption(
                "reports per wave (green healthy, red failed)",
                ("sans-serif", 15),
            )
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(48)
            .build_cartesian_2d(0u32..waves + 1, 0u32..y_max + y_max / 5 + 1)
            .map_err(e)?;
        b.configure_mesh()
            .x_desc("wave")
            .y_desc("reports")
            .x_labels(waves as usize + 2)
            .draw()
            .map_err(e)?;
        if let Some(c0) = counts {
            for (wave, n) in &c0.waves {
                let x = *wave;
                b.draw_series([Rectangle::new(
                    [(x, 0), (x + 1, n.healthy)],
                    GREEN.mix(0.6).filled(),
                )])
                .map_err(e)?;
                b.draw_series([Rectangle::new(
                    [(x, n.healthy), (x + 1, n.healthy + n.failed)],
                    RED.mix(0.8).filled(),
                )])
                .map_err(e)?;
            }
        }
        root.present().map_err(e)?;
    }
    Ok(svg)
}
