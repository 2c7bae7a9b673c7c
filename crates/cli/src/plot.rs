//! `curves.svg`: the loss and accuracy curves side by side.

use plotters::prelude::*;
use wengert_train::History;

const TRAIN: RGBColor = RGBColor(31, 119, 180);
const VALIDATION: RGBColor = RGBColor(255, 127, 14);

/// The SVG of the loss curves (left) and accuracy curves (right) per epoch.
pub fn curves_svg(history: &History) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 400)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let (left, right) = root.split_horizontally(480);
        let epochs = history.epochs.len().max(1) as f64;
        let points = |f: &dyn Fn(&wengert_train::EpochRecord) -> Option<f64>| -> Vec<(f64, f64)> {
            history
                .epochs
                .iter()
                .filter_map(|r| f(r).filter(|v| v.is_finite()).map(|v| (r.epoch as f64, v)))
                .collect()
        };
        let train_loss = points(&|r| Some(r.train_loss));
        let val_loss = points(&|r| r.val_loss);
        let train_acc = points(&|r| r.train_accuracy);
        let val_acc = points(&|r| r.val_accuracy);
        let max_loss = train_loss
            .iter()
            .chain(&val_loss)
            .map(|p| p.1)
            .fold(0.0f64, f64::max)
            .max(1e-3)
            * 1.05;

        panel(
            &left,
            "loss",
            epochs,
            (0.0, max_loss),
            &[
                ("train", TRAIN, &train_loss),
                ("validation", VALIDATION, &val_loss),
            ],
        )?;
        panel(
            &right,
            "accuracy",
            epochs,
            (0.0, 1.0),
            &[
                ("train", TRAIN, &train_acc),
                ("validation", VALIDATION, &val_acc),
            ],
        )?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

type Series<'a> = (&'a str, RGBColor, &'a Vec<(f64, f64)>);

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    epochs: f64,
    y: (f64, f64),
    series: &[Series<'_>],
) -> Result<(), String> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(52)
        .build_cartesian_2d(1.0..epochs.max(2.0), y.0..y.1)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(title)
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
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

fn plot_err<E: std::fmt::Debug>(e: E) -> String {
    format!("drawing curves.svg: {e:?}")
}
