//! `curves.svg`: the loss (left, on a log scale) and the accuracy (right, zoomed to the range
//! it spans) per epoch, with the epochs as whole numbers and markers at the best epoch (whose
//! weights were kept) and, when early stopping ended the run, at its last epoch.

use plotters::coord::Shift;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::prelude::*;
use wengert_train::{EpochRecord, History, StopReason};

const TRAIN: RGBColor = RGBColor(31, 119, 180);
const VALIDATION: RGBColor = RGBColor(255, 127, 14);
const BEST: RGBColor = RGBColor(44, 160, 44);
const STOPPED: RGBColor = RGBColor(214, 39, 40);

/// The most epoch labels on an axis: a long run gets every 2nd, 5th, 10th, ... epoch.
const MAX_EPOCH_LABELS: usize = 10;

/// A curve: its legend name, colour and points `(epoch, value)`.
type Series<'a> = (&'a str, RGBColor, &'a [(u32, f64)]);

/// The SVG of the loss curves (left) and accuracy curves (right) per epoch.
pub fn curves_svg(history: &History) -> Result<String, String> {
    let points = |f: &dyn Fn(&EpochRecord) -> Option<f64>| -> Vec<(u32, f64)> {
        history
            .epochs
            .iter()
            .filter_map(|r| {
                let epoch = u32::try_from(r.epoch).ok()?;
                f(r).filter(|v| v.is_finite()).map(|v| (epoch, v))
            })
            .collect()
    };
    // A log scale has no place for a loss of 0 (a perfect fit) or below.
    let positive = |v: Option<f64>| v.filter(|v| *v > 0.0);
    let train_loss = points(&|r| positive(Some(r.train_loss)));
    let val_loss = points(&|r| positive(r.val_loss));
    let train_acc = points(&|r| r.train_accuracy);
    let val_acc = points(&|r| r.val_accuracy);
    let last = history.epochs.last().map_or(1, |r| r.epoch);
    let epochs = 1..u32::try_from(last.max(2)).unwrap_or(u32::MAX);
    let markers = Markers::of(history);

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 400)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let (left, right) = root.split_horizontally(480);
        let (low, high) = loss_range(train_loss.iter().chain(&val_loss).map(|p| p.1));
        panel(
            &left,
            "loss (log scale)",
            epochs.clone(),
            (low..high).log_scale(),
            &|v| format_loss(*v),
            &[
                ("train", TRAIN, &train_loss),
                ("validation", VALIDATION, &val_loss),
            ],
            &markers,
            SeriesLabelPosition::UpperRight,
        )?;
        let (low, high) = accuracy_range(train_acc.iter().chain(&val_acc).map(|p| p.1));
        panel(
            &right,
            "accuracy",
            epochs,
            low..high,
            &|v| format!("{:.*}%", percent_decimals(high - low), 100.0 * v),
            &[
                ("train", TRAIN, &train_acc),
                ("validation", VALIDATION, &val_acc),
            ],
            &markers,
            // Accuracy rises: the lower right is where the curves are not.
            SeriesLabelPosition::LowerRight,
        )?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// The epochs marked with a vertical line: the best (its weights were kept), and the last
/// when early stopping ended the run there.
struct Markers {
    best: Option<u32>,
    stopped: Option<u32>,
}

impl Markers {
    fn of(history: &History) -> Self {
        let epoch = |e: usize| u32::try_from(e).ok();
        Markers {
            best: history.best_epoch.and_then(epoch),
            stopped: (history.stop_reason == StopReason::EarlyStopping)
                .then(|| history.epochs.last().and_then(|r| epoch(r.epoch)))
                .flatten(),
        }
    }
}

/// The loss axis: from a little below the smallest loss to a little above the largest, a
/// decade wide at least, so that a flat curve is not stretched into noise.
fn loss_range(losses: impl Iterator<Item = f64>) -> (f64, f64) {
    let (low, high) = losses.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !(low.is_finite() && low > 0.0) {
        return (0.1, 1.0);
    }
    let (mut low, mut high) = (low / 1.25, high * 1.25);
    if high / low < 10.0 {
        let centre = (low * high).sqrt();
        (low, high) = (centre / 10f64.sqrt(), centre * 10f64.sqrt());
    }
    (low, high)
}

/// The accuracy axis: the range the curves span with a margin, within `[0, 1]`, at least 2
/// points wide.
fn accuracy_range(accuracies: impl Iterator<Item = f64>) -> (f64, f64) {
    let (low, high) = accuracies.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !(low.is_finite() && high.is_finite()) {
        return (0.0, 1.0);
    }
    let margin = ((high - low) * 0.08).max(0.01);
    let (mut low, mut high) = ((low - margin).max(0.0), (high + margin).min(1.0));
    if high - low < 0.02 {
        if high >= 1.0 {
            low = high - 0.02;
        } else {
            high = low + 0.02;
        }
    }
    (low, high)
}

/// Decimals of a percentage for an axis `span` wide (a fraction): enough to tell the ticks
/// apart.
fn percent_decimals(span: f64) -> usize {
    if span >= 0.2 {
        0
    } else if span >= 0.02 {
        1
    } else {
        2
    }
}

/// A loss on its log axis, in as few characters as tell the ticks apart.
fn format_loss(v: f64) -> String {
    if !(1e-3..100.0).contains(&v) {
        format!("{v:.0e}")
    } else {
        let text = format!("{v:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// One chart: `series` over the epochs, with the markers and a legend.
#[allow(clippy::too_many_arguments)]
fn panel<DB: DrawingBackend, Y>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    epochs: std::ops::Range<u32>,
    y: Y,
    y_label: &dyn Fn(&f64) -> String,
    series: &[Series<'_>],
    markers: &Markers,
    legend: SeriesLabelPosition,
) -> Result<(), String>
where
    Y: plotters::coord::ranged1d::AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let last = epochs.end;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(epochs, y)
        .map_err(plot_err)?;
    let (low, high) = {
        let range = chart.y_range();
        (range.start, range.end)
    };
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(title.split(' ').next().unwrap_or(title))
        .x_labels(MAX_EPOCH_LABELS.min(last as usize))
        .x_label_formatter(&|e| e.to_string())
        .y_labels(8)
        .y_label_formatter(y_label)
        .draw()
        .map_err(plot_err)?;
    for &(name, color, points) in series {
        if points.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(plot_err)?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        // A dot per epoch: a run of few epochs still shows where its values are.
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 2, color.filled())))
            .map_err(plot_err)?;
    }
    let marks = [
        (markers.best, BEST, "best epoch"),
        (markers.stopped, STOPPED, "early stop"),
    ];
    for (epoch, color, what) in marks {
        let Some(epoch) = epoch else { continue };
        chart
            .draw_series(DashedLineSeries::new(
                [(epoch, low), (epoch, high)],
                6,
                4,
                color.stroke_width(2),
            ))
            .map_err(plot_err)?
            .label(format!("{what} ({epoch})"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(legend)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

fn plot_err<E: std::fmt::Debug>(e: E) -> String {
    format!("drawing curves.svg: {e:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(epoch: usize, loss: f64, accuracy: f64) -> EpochRecord {
        EpochRecord {
            epoch,
            train_loss: loss,
            train_accuracy: Some(accuracy),
            val_loss: Some(loss * 1.1),
            val_accuracy: Some(accuracy - 0.01),
            learning_rate: 0.001,
            seconds: 0.1,
        }
    }

    /// The texts of the SVG's `<text>` elements.
    fn texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                let body = &t[t.find('>')? + 1..];
                Some(body[..body.find("</text>")?].trim().to_string())
            })
            .collect()
    }

    fn history(epochs: usize, best: usize, stop: StopReason) -> History {
        History {
            epochs: (1..=epochs)
                .map(|e| record(e, 2.0 / e as f64, 0.9 + 0.0005 * e as f64))
                .collect(),
            best_epoch: Some(best),
            stop_reason: stop,
            steps: epochs,
        }
    }

    fn empty() -> History {
        History {
            epochs: Vec::new(),
            best_epoch: None,
            stop_reason: StopReason::Completed,
            steps: 0,
        }
    }

    #[test]
    fn the_chart_marks_the_best_epoch_and_early_stopping_with_whole_epochs() {
        let svg = curves_svg(&history(7, 4, StopReason::EarlyStopping)).unwrap();
        let texts = texts(&svg);
        assert!(texts.iter().any(|t| t == "best epoch (4)"), "{texts:?}");
        assert!(texts.iter().any(|t| t == "early stop (7)"), "{texts:?}");
        assert!(texts.iter().any(|t| t == "loss (log scale)"), "{texts:?}");
        for epoch in 1..=7 {
            assert!(texts.contains(&epoch.to_string()), "{epoch}: {texts:?}");
        }
        // No fractional epoch anywhere; the accuracy axis is in percent.
        assert!(
            !texts.iter().any(|t| t.ends_with(".5") && !t.contains('%')),
            "{texts:?}"
        );
        assert!(texts.iter().any(|t| t.ends_with('%')), "{texts:?}");

        let completed = curves_svg(&history(7, 7, StopReason::Completed)).unwrap();
        let texts = super::tests::texts(&completed);
        assert!(texts.iter().any(|t| t == "best epoch (7)"), "{texts:?}");
        assert!(
            !texts.iter().any(|t| t.starts_with("early stop")),
            "{texts:?}"
        );
    }

    #[test]
    fn a_long_run_labels_at_most_ten_epochs_and_a_single_epoch_still_draws() {
        let svg = curves_svg(&history(200, 150, StopReason::Completed)).unwrap();
        let epochs = texts(&svg)
            .iter()
            .filter(|t| t.parse::<u32>().is_ok())
            .count();
        // Each panel labels its epoch axis.
        assert!(epochs <= 2 * (MAX_EPOCH_LABELS + 1), "{epochs}");
        assert!(curves_svg(&history(1, 1, StopReason::Completed)).is_ok());
        assert!(curves_svg(&empty()).is_ok());
    }

    #[test]
    fn the_loss_axis_spans_a_decade_at_least_and_skips_what_a_log_cannot_show() {
        let (low, high) = loss_range([0.5, 0.4].into_iter());
        assert!(
            low < 0.4 && high > 0.5 && high / low >= 9.99,
            "{low} {high}"
        );
        let (low, high) = loss_range([2.0, 0.001].into_iter());
        assert!(low < 0.001 && high > 2.0, "{low} {high}");
        assert_eq!(loss_range(std::iter::empty()), (0.1, 1.0));
        let history = History {
            epochs: vec![record(1, 0.0, 1.0), record(2, f64::NAN, 1.0)],
            ..empty()
        };
        assert!(curves_svg(&history).is_ok());
    }

    #[test]
    fn the_accuracy_axis_zooms_to_the_curves_within_zero_and_one() {
        let (low, high) = accuracy_range([0.95, 0.98].into_iter());
        assert!(
            (0.9..0.95).contains(&low) && (0.98..=1.0).contains(&high),
            "{low} {high}"
        );
        assert_eq!(accuracy_range([1.0, 1.0].into_iter()), (0.98, 1.0));
        let (low, high) = accuracy_range([0.0, 0.0].into_iter());
        assert!(low == 0.0 && (high - 0.02).abs() < 1e-12, "{low} {high}");
        assert_eq!(accuracy_range(std::iter::empty()), (0.0, 1.0));
        assert_eq!(percent_decimals(0.05), 1);
    }
}
