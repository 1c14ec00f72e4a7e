//! End-to-end checks of heatmaps, line charts and `Picture`: validation, SVG and PNG output.

use backlens_plot::{
    Cell, ColorScale, Heatmap, LineChart, Picture, PlotError, ReferenceLine, Series, TokenTable, PNG_SCALE,
};

fn heatmap(rows: usize, cols: usize) -> Heatmap {
    Heatmap {
        title: format!("{rows}x{cols} heatmap"),
        row_labels: (0..rows).map(|r| format!("row {r}")).collect(),
        col_labels: (0..cols).map(|c| c.to_string()).collect(),
        values: (0..rows).map(|r| (0..cols).map(|c| (r * cols + c) as f32 / 10.0).collect()).collect(),
        x_label: "column axis".into(),
        y_label: "row axis".into(),
        value_label: "the value".into(),
        scale: ColorScale::Sequential,
        range: None,
        annotate: false,
    }
}

fn chart() -> LineChart {
    LineChart {
        title: "a chart".into(),
        x_label: "layer".into(),
        y_label: "rank".into(),
        series: ["alpha", "beta", "gamma"]
            .iter()
            .enumerate()
            .map(|(k, name)| Series {
                name: (*name).into(),
                points: (0..10).map(|i| (i as f64, (i * (k + 1)) as f64 / 10.0)).collect(),
            })
            .collect(),
        x_range: None,
        y_range: None,
        reference_lines: vec![ReferenceLine { y: 0.5, label: "chance".into() }],
    }
}

fn parse(svg: &str) -> roxmltree::Document<'_> {
    roxmltree::Document::parse(svg).expect("SVG must be well-formed XML")
}

/// Text content of every `<text>` element, whitespace-trimmed.
fn svg_texts(svg: &str) -> Vec<String> {
    parse(svg)
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or("").trim().to_owned())
        .collect()
}

fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
    let reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().expect("valid PNG header");
    let info = reader.info();
    (info.width, info.height)
}

fn svg_size(svg: &str) -> (u32, u32) {
    let doc = parse(svg);
    let root = doc.root_element();
    let get = |a| root.attribute(a).unwrap().parse().unwrap();
    (get("width"), get("height"))
}

#[test]
fn heatmap_validation_errors() {
    heatmap(3, 4).validate().unwrap();

    let mut h = heatmap(3, 4);
    h.row_labels.pop();
    assert!(matches!(h.validate(), Err(PlotError::RowLabelCount { labels: 2, rows: 3 })));

    let mut h = heatmap(3, 4);
    h.values[2].pop();
    let err = h.validate().unwrap_err();
    assert!(matches!(err, PlotError::RaggedRow { row: 2, len: 3, expected: 4 }), "{err}");

    let mut h = heatmap(3, 4);
    h.col_labels.push("extra".into());
    assert!(matches!(h.validate(), Err(PlotError::RaggedRow { row: 0, .. })));

    let h = Heatmap::default();
    assert!(matches!(h.validate(), Err(PlotError::Empty { rows: 0, cols: 0 })));

    for bad in [f32::INFINITY, f32::NEG_INFINITY] {
        let mut h = heatmap(3, 4);
        h.values[1][2] = bad;
        let err = h.validate().unwrap_err();
        assert!(matches!(err, PlotError::InfiniteValue { row: 1, col: 2, .. }), "{err}");
        assert!(h.to_svg().is_err() && h.to_png().is_err());
    }

    for (scale, range) in [
        (ColorScale::Sequential, (1.0, 1.0)),
        (ColorScale::Sequential, (2.0, 1.0)),
        (ColorScale::Sequential, (f32::NAN, 1.0)),
        (ColorScale::Sequential, (0.0, f32::INFINITY)),
        (ColorScale::Diverging, (0.0, 1.0)),
        (ColorScale::Diverging, (-2.0, -1.0)),
    ] {
        let h = Heatmap { scale, range: Some(range), ..heatmap(2, 2) };
        let err = h.validate().unwrap_err();
        assert!(matches!(err, PlotError::InvalidRange { what: "colour range", .. }), "{range:?}: {err}");
    }
    let h = Heatmap { scale: ColorScale::Diverging, range: Some((-1.0, 3.0)), ..heatmap(2, 2) };
    h.validate().unwrap();
}

#[test]
fn line_chart_validation_errors() {
    chart().validate().unwrap();

    let mut c = chart();
    c.series[1].points[3].0 = f64::NAN;
    let err = c.validate().unwrap_err();
    assert!(matches!(err, PlotError::InvalidPoint { series: 1, index: 3, .. }), "{err}");
    let mut c = chart();
    c.series[2].points[0].1 = f64::INFINITY;
    assert!(matches!(c.validate(), Err(PlotError::InvalidPoint { series: 2, index: 0, .. })));

    let mut c = chart();
    c.series[0].points[4].1 = f64::NAN; // a gap is fine
    c.validate().unwrap();

    let mut c = chart();
    c.reference_lines.push(ReferenceLine { y: f64::NAN, label: String::new() });
    assert!(matches!(c.validate(), Err(PlotError::InvalidReferenceLine { index: 1, .. })));

    for (x_range, y_range, what) in [
        (Some((1.0, 0.0)), None, "x range"),
        (None, Some((0.0, f64::NAN)), "y range"),
        (Some((2.0, 2.0)), None, "x range"),
    ] {
        let c = LineChart { x_range, y_range, ..chart() };
        let err = c.validate().unwrap_err();
        assert!(matches!(&err, PlotError::InvalidRange { what: w, .. } if *w == what), "{err}");
    }

    assert!(matches!(LineChart::default().validate(), Err(PlotError::NoData)));
    let c = LineChart {
        series: vec![Series { name: "empty".into(), points: vec![(0.0, f64::NAN), (1.0, f64::NAN)] }],
        ..chart()
    };
    assert!(matches!(c.to_svg(), Err(PlotError::NoData)));
}

#[test]
fn heatmap_svg_has_title_labels_and_legend() {
    let mut h = heatmap(5, 30);
    h.col_labels = (0..30).map(|c| format!(" token{c}")).collect();
    let svg = h.to_svg().unwrap();
    let texts = svg_texts(&svg);
    for expected in
        [&h.title, &h.x_label, &h.y_label, &h.value_label].into_iter().chain(&h.row_labels).chain(&h.col_labels)
    {
        assert!(texts.contains(&expected.trim().to_owned()), "missing {expected:?} in {texts:?}");
    }
    assert!(!texts.contains(&"no value".to_owned()), "no NaN, no swatch");
    // Long token labels under narrow columns are written vertically; so is the y caption.
    let doc = parse(&svg);
    let rotated: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter(|n| n.attribute("transform").is_some_and(|t| t.starts_with("rotate(270")))
        .map(|n| n.text().unwrap_or("").trim().to_owned())
        .collect();
    assert!(rotated.contains(&"token7".to_owned()), "{rotated:?}");
    assert!(rotated.contains(&"row axis".to_owned()), "{rotated:?}");
    assert_eq!(svg_size(&svg), h.pixel_size(1.0).unwrap());
}

#[test]
fn small_and_square_heatmaps_render_to_png_of_the_promised_size() {
    for h in [heatmap(5, 30), heatmap(30, 30), heatmap(1, 1)] {
        let (w, h_px) = png_size(&h.to_png().unwrap());
        assert_eq!((w, h_px), h.pixel_size(PNG_SCALE).unwrap());
        let (sw, sh) = h.pixel_size(1.0).unwrap();
        assert!(w.abs_diff(2 * sw) <= 4 && h_px.abs_diff(2 * sh) <= 4);
        let (w1, h1) = png_size(&h.to_png_with_scale(1.0).unwrap());
        assert_eq!((w1, h1), (sw, sh));
    }
    let (w, h) = heatmap(30, 30).pixel_size(1.0).unwrap();
    assert!((600..1200).contains(&w) && (600..1200).contains(&h), "{w}x{h}");
}

#[test]
fn wide_heatmap_is_bounded_and_thins_its_column_labels() {
    let h = heatmap(6, 1536);
    let svg = h.to_svg().unwrap();
    let (w, height) = svg_size(&svg);
    assert!(w <= 1450, "width {w}");
    assert!(height < 600, "height {height}");
    let texts = svg_texts(&svg);
    let col_labels = texts.iter().filter(|t| t.parse::<usize>().is_ok_and(|v| v < 1536)).count();
    assert!((5..100).contains(&col_labels), "{col_labels} column labels drawn");
    // Every row label still shows.
    for r in &h.row_labels {
        assert!(texts.contains(r), "missing {r}");
    }
    let (pw, _) = png_size(&h.to_png().unwrap());
    assert!(pw <= 2 * 1450, "PNG width {pw}");
    // Labels drawn are round: 0 and multiples of the stride.
    assert!(texts.contains(&"0".to_owned()));
}

#[test]
fn tall_heatmap_is_bounded_and_thins_its_row_labels() {
    let mut h = heatmap(1536, 6);
    h.row_labels = (0..1536).map(|r| r.to_string()).collect();
    let svg = h.to_svg().unwrap();
    let (w, height) = svg_size(&svg);
    assert!(height <= 1450 && w < 800, "{w}x{height}");
    let row_labels =
        svg_texts(&svg).iter().filter(|t| t.parse::<usize>().is_ok_and(|v| (6..1536).contains(&v))).count();
    assert!((5..150).contains(&row_labels), "{row_labels} row labels");
}

#[test]
fn nan_cells_are_grey_and_get_a_legend_swatch() {
    let mut h = heatmap(3, 3);
    h.values[1][1] = f32::NAN;
    let svg = h.to_svg().unwrap();
    assert!(svg_texts(&svg).contains(&"no value".to_owned()));
    let doc = parse(&svg);
    let grey = doc.descendants().filter(|n| n.has_tag_name("rect") && n.attribute("fill") == Some("#C8C8C8")).count();
    assert_eq!(grey, 2, "the cell and the swatch");
    // NaN does not enter the derived range.
    assert_eq!(h.color_range().unwrap(), (0.0, 0.8));

    let all_nan = Heatmap { values: vec![vec![f32::NAN; 2]; 2], ..heatmap(2, 2) };
    all_nan.to_png().unwrap();
}

#[test]
fn color_ranges_follow_the_scale() {
    let mut h = heatmap(2, 2);
    h.values = vec![vec![-0.3, 2.0], vec![0.5, f32::NAN]];
    assert_eq!(h.color_range().unwrap(), (-0.3, 2.0));
    h.values = vec![vec![1.0, 3.0], vec![2.0, 2.5]];
    assert_eq!(h.color_range().unwrap(), (0.0, 3.0), "includes 0");

    h.scale = ColorScale::Diverging;
    h.values = vec![vec![-0.3, 2.0], vec![0.5, f32::NAN]];
    assert_eq!(h.color_range().unwrap(), (-2.0, 2.0), "symmetric");
    h.values = vec![vec![-4.0, 1.0], vec![0.5, 0.0]];
    assert_eq!(h.color_range().unwrap(), (-4.0, 4.0));
    h.values = vec![vec![0.0; 2]; 2];
    assert_eq!(h.color_range().unwrap(), (-1.0, 1.0), "all zero");
    h.range = Some((-1.0, 1.0));
    assert_eq!(h.color_range().unwrap(), (-1.0, 1.0));

    // Diverging colours: the most negative cell is the darkest blue, 0 white, max dark red.
    let h = Heatmap {
        values: vec![vec![-2.0, 0.0, 2.0]],
        row_labels: vec!["r".into()],
        col_labels: vec!["a".into(), "b".into(), "c".into()],
        scale: ColorScale::Diverging,
        ..heatmap(1, 3)
    };
    let svg = h.to_svg().unwrap();
    for fill in ["#08306B", "#FFFFFF", "#67000D"] {
        assert!(svg.contains(&format!("fill=\"{fill}\"")), "missing {fill}");
    }
}

#[test]
fn annotations_show_on_small_maps_only() {
    let mut h = heatmap(2, 3);
    h.values = vec![vec![0.1234, 12.345, -1.0], vec![1234.5, f32::NAN, 0.0]];
    h.annotate = true;
    let texts = svg_texts(&h.to_svg().unwrap());
    for v in ["0.123", "12.3", "-1", "1234", "0"] {
        assert!(texts.contains(&v.to_owned()), "missing {v} in {texts:?}");
    }
    let mut wide = heatmap(2, 600);
    wide.annotate = true;
    let texts = svg_texts(&wide.to_svg().unwrap());
    assert!(!texts.iter().any(|t| t.contains('.')), "cells too narrow");
}

#[test]
fn line_chart_svg_has_title_axes_ticks_and_legend() {
    let c = chart();
    let svg = c.to_svg().unwrap();
    let texts = svg_texts(&svg);
    for expected in ["a chart", "layer", "rank", "alpha", "beta", "gamma", "chance", "0", "8"] {
        assert!(texts.contains(&expected.to_owned()), "missing {expected:?} in {texts:?}");
    }
    let doc = parse(&svg);
    // Three series in three distinct colours, each with markers.
    let strokes: std::collections::BTreeSet<_> =
        doc.descendants().filter(|n| n.has_tag_name("polyline")).filter_map(|n| n.attribute("stroke")).collect();
    assert!(strokes.is_superset(&["#0072B2", "#D55E00", "#009E73"].into()), "{strokes:?}");
    assert!(doc.descendants().any(|n| n.has_tag_name("circle")));
    assert!(doc.descendants().any(|n| n.has_tag_name("polygon")));
    assert_eq!(svg_size(&svg), c.pixel_size(1.0).unwrap());

    let (w, h) = png_size(&c.to_png().unwrap());
    assert_eq!((w, h), c.pixel_size(PNG_SCALE).unwrap());
}

#[test]
fn line_chart_ranges_gaps_and_clipping() {
    let mut c = chart();
    let ((x0, x1), (y0, y1)) = c.ranges().unwrap();
    assert!(x0 < 0.0 && x0 > -1.0 && x1 > 9.0 && x1 < 10.0, "{x0} {x1}");
    assert!(y0 < 0.0 && y1 > 2.7, "{y0} {y1}");

    // A gap splits the line in two.
    c.series.truncate(1);
    c.series[0].points[5].1 = f64::NAN;
    let svg = c.to_svg().unwrap();
    let doc = parse(&svg);
    let lines =
        doc.descendants().filter(|n| n.has_tag_name("polyline") && n.attribute("stroke") == Some("#0072B2")).count();
    assert_eq!(lines, 2, "two runs");

    // With a y range cutting through the data, lines stay inside the plot frame.
    let c = LineChart { y_range: Some((0.2, 0.6)), ..chart() };
    let svg = c.to_svg().unwrap();
    let doc = parse(&svg);
    let frame = doc
        .descendants()
        .find(|n| n.has_tag_name("rect") && n.attribute("stroke") == Some("#969696"))
        .expect("plot frame");
    let num = |a| frame.attribute(a).unwrap().parse::<i32>().unwrap();
    let (fx, fy, fw, fh) = (num("x"), num("y"), num("width"), num("height"));
    let mut checked = 0;
    for n in doc.descendants().filter(|n| n.has_tag_name("polyline")) {
        for xy in n.attribute("points").unwrap().split_whitespace() {
            let (x, y) = xy.split_once(',').unwrap();
            let (x, y): (i32, i32) = (x.parse().unwrap(), y.parse().unwrap());
            assert!((fx..=fx + fw).contains(&x) && (fy..=fy + fh).contains(&y), "{x},{y}");
            checked += 1;
        }
    }
    assert!(checked > 10);
}

#[test]
fn reference_lines_are_dashed_and_labelled() {
    let svg = chart().to_svg().unwrap();
    let doc = parse(&svg);
    let dashes =
        doc.descendants().filter(|n| n.has_tag_name("line") && n.attribute("stroke") == Some("#5A5A5A")).count();
    assert!(dashes > 10, "{dashes} dashes");
    assert!(svg_texts(&svg).contains(&"chance".to_owned()));
}

fn table() -> TokenTable {
    TokenTable {
        title: "table title".into(),
        row_labels: vec!["0".into()],
        row_caption: "layer".into(),
        col_labels: vec!["x".into()],
        cells: vec![vec![Cell::new("y", 1.0)]],
        value_label: "v".into(),
    }
}

#[test]
fn pictures_dispatch_to_their_figure() {
    let pictures: Vec<Picture> = vec![table().into(), heatmap(2, 3).into(), chart().into()];
    assert_eq!(pictures[0].title(), "table title");
    assert_eq!(pictures[1].title(), "2x3 heatmap");
    assert_eq!(pictures[2].title(), "a chart");
    assert_eq!(pictures[1].to_svg().unwrap(), heatmap(2, 3).to_svg().unwrap());
    assert_eq!(pictures[2].to_png().unwrap(), chart().to_png().unwrap());
    assert_eq!(pictures[0].pixel_size(1.0).unwrap(), table().pixel_size(1.0).unwrap());
    assert!(matches!(Picture::from(Heatmap::default()).to_svg(), Err(PlotError::Empty { .. })));
}

#[test]
fn write_picks_the_format_from_the_extension() {
    let dir = std::env::temp_dir().join(format!("backlens-plot-figures-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let picture = Picture::from(chart());
    picture.write(dir.join("c.svg")).unwrap();
    picture.write(dir.join("c.PNG")).unwrap();
    heatmap(2, 2).write(dir.join("h.png")).unwrap();
    assert!(std::fs::read_to_string(dir.join("c.svg")).unwrap().starts_with("<svg"));
    assert!(std::fs::read(dir.join("c.PNG")).unwrap().starts_with(b"\x89PNG"));
    assert!(std::fs::read(dir.join("h.png")).unwrap().starts_with(b"\x89PNG"));
    for bad in ["c.jpg", "c", "c.svg.txt"] {
        let err = picture.write(dir.join(bad)).unwrap_err();
        assert!(matches!(err, PlotError::UnknownFormat { .. }), "{err}");
        assert!(err.to_string().contains(".svg or .png"), "{err}");
        assert!(!dir.join(bad).exists());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
