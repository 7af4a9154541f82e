//! `report.html`: one self-contained page (no script, no external file) with the summary table
//! and three charts drawn as inline SVG: mean KL per pair, top-1 agreement per pair, and size
//! against fidelity with speed as the marker size. People compare presets by looking, and a
//! handful of bars and circles is less code to review than a plotting dependency (and adds
//! nothing to the build). The markup is XML-well-formed (every element closed, text escaped)
//! so a plain XML check can validate it.
use super::report::{fmt_kl, Report, Summary};

/// Escapes text for HTML/SVG content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const W: f64 = 720.0;
const LABEL_W: f64 = 170.0;
const BAR_H: f64 = 22.0;
const COLORS: [&str; 10] = ["#3366aa", "#cc6633", "#339966", "#aa3377", "#997700", "#556677", "#dd4444", "#44aacc", "#888833", "#7755bb"];

/// Horizontal bars, one per pair, scaled to `max`; `None` values draw no bar ("n/a").
fn bar_chart(title: &str, id: &str, bars: &[(String, Option<f64>)], max: f64, fmt: &dyn Fn(f64) -> String) -> String {
    let h = 40.0 + bars.len() as f64 * (BAR_H + 8.0) + 30.0;
    let plot_w = W - LABEL_W - 90.0;
    let max = if max > 0.0 && max.is_finite() { max } else { 1.0 };
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" id="{id}" width="{W}" height="{h}" viewBox="0 0 {W} {h}" role="img" aria-label="{t}"><title>{t}</title><text x="10" y="22" class="t">{t}</text>"#,
        t = esc(title)
    );
    for (i, (name, v)) in bars.iter().enumerate() {
        let y = 40.0 + i as f64 * (BAR_H + 8.0);
        s.push_str(&format!(r#"<text x="{x}" y="{ty}" text-anchor="end">{n}</text>"#, x = LABEL_W - 8.0, ty = y + BAR_H * 0.7, n = esc(name)));
        match v {
            Some(v) => {
                let w = (v / max).clamp(0.0, 1.0) * plot_w;
                s.push_str(&format!(
                    r#"<rect x="{LABEL_W}" y="{y}" width="{w:.1}" height="{BAR_H}" fill="{c}"/><text x="{tx:.1}" y="{ty}">{l}</text>"#,
                    c = COLORS[i % COLORS.len()],
                    tx = LABEL_W + w + 6.0,
                    ty = y + BAR_H * 0.7,
                    l = esc(&fmt(*v))
                ));
            }
            None => s.push_str(&format!(r#"<text x="{x}" y="{ty}" class="na">n/a</text>"#, x = LABEL_W + 6.0, ty = y + BAR_H * 0.7)),
        }
    }
    let axis_y = h - 22.0;
    s.push_str(&format!(
        r##"<line x1="{LABEL_W}" y1="{axis_y}" x2="{x2}" y2="{axis_y}" stroke="#888"/><text x="{LABEL_W}" y="{ly}">0</text><text x="{x2}" y="{ly}" text-anchor="end">{m}</text></svg>"##,
        x2 = LABEL_W + plot_w,
        ly = axis_y + 16.0,
        m = esc(&fmt(max))
    ));
    s
}

/// Size (x) against mean KL (y), marker area proportional to decode speed. Points carry a
/// number and the legend beside the plot names them (labels beside close points would overlap).
fn scatter(summaries: &[Summary]) -> String {
    let (w, left, right, top, bottom) = (900.0, 70.0, 360.0, 40.0, 50.0);
    let pts: Vec<(&Summary, f64, f64)> =
        summaries.iter().filter_map(|s| Some((s, s.size_bytes as f64 / 1e6, s.kl_mean?))).collect();
    let h = (top + bottom + 300.0f64).max(top + 20.0 + pts.len() as f64 * 18.0);
    let xmax = pts.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-9) * 1.1;
    let ymax = pts.iter().map(|p| p.2).fold(0.0, f64::max).max(1e-12) * 1.15;
    let vmax = pts.iter().filter_map(|p| p.0.decode_tok_s).fold(0.0, f64::max);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let title = "Size vs fidelity vs speed (marker area: decode tok/s)";
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" id="size-speed-fidelity" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{t}"><title>{t}</title><text x="10" y="22" class="t">{t}</text>"#,
        t = esc(title)
    );
    s.push_str(&format!(
        r##"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#888"/><text x="{cx}" y="{by}" text-anchor="middle">model files, MB (LLM + mmproj)</text><text x="14" y="{cy}" transform="rotate(-90 14 {cy})" text-anchor="middle">mean KL vs the reference</text>"##,
        cx = left + pw / 2.0,
        by = h - 10.0,
        cy = top + ph / 2.0,
    ));
    for k in 0..=4 {
        let f = k as f64 / 4.0;
        let (x, y) = (left + f * pw, top + ph - f * ph);
        s.push_str(&format!(
            r##"<line x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{y1}" stroke="#888"/><text x="{x:.1}" y="{ty}" text-anchor="middle">{xl:.1}</text><line x1="{x0}" y1="{y:.1}" x2="{left}" y2="{y:.1}" stroke="#888"/><text x="{lx}" y="{yt:.1}" text-anchor="end">{yl}</text>"##,
            y0 = top + ph,
            y1 = top + ph + 5.0,
            ty = top + ph + 18.0,
            xl = f * xmax,
            x0 = left - 5.0,
            lx = left - 8.0,
            yt = y + 4.0,
            yl = esc(&fmt_kl(f * ymax))
        ));
    }
    for (i, (sm, x, y)) in pts.iter().enumerate() {
        let px = left + x / xmax * pw;
        let py = top + ph - y / ymax * ph;
        let r = match sm.decode_tok_s {
            Some(v) if vmax > 0.0 => 4.0 + 12.0 * (v / vmax).sqrt(),
            _ => 4.0,
        };
        let c = COLORS[i % COLORS.len()];
        s.push_str(&format!(
            r#"<circle cx="{px:.1}" cy="{py:.1}" r="{r:.1}" fill="{c}" fill-opacity="0.55" stroke="{c}"/><text x="{px:.1}" y="{ty:.1}" text-anchor="middle" class="n">{n}</text>"#,
            ty = py + 4.0,
            n = i + 1
        ));
        let speed = sm.decode_tok_s.map_or("n/a".to_string(), |v| format!("{v:.1} tok/s"));
        let ly = top + 10.0 + i as f64 * 18.0;
        s.push_str(&format!(
            r#"<rect x="{lx}" y="{ry:.1}" width="10" height="10" fill="{c}"/><text x="{tx}" y="{ly:.1}">{l}</text>"#,
            lx = w - right + 20.0,
            ry = ly - 9.0,
            tx = w - right + 36.0,
            l = esc(&format!("{}. {}: {:.1} MB, KL {}, {}", i + 1, sm.name, x, fmt_kl(*y), speed))
        ));
    }
    s.push_str("</svg>");
    s
}

/// Chart ids, in page order (the tests count one `<svg>` per chart).
pub const CHARTS: [&str; 3] = ["kl-per-pair", "top1-per-pair", "size-speed-fidelity"];

fn summary_table(summaries: &[Summary]) -> String {
    let mut t = String::from(
        "<table><thead><tr><th>pair (LLM + vision)</th><th>size MB</th><th>emb cos min</th><th>emb cos mean</th><th>KL mean</th><th>KL max</th><th>top-1</th><th>ΔLL / answer</th><th>common prefix</th><th>same answer</th><th>JSON fields equal</th><th>encode s/tile</th><th>prefill tok/s</th><th>decode tok/s</th><th>peak RSS MB</th><th>cases</th></tr></thead><tbody>",
    );
    let o = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("-".to_string(), f);
    for s in summaries {
        let cells = [
            esc(&s.name),
            format!("{:.1}", s.size_bytes as f64 / 1e6),
            o(s.embed_cos_min, &|v| format!("{v:.5}")),
            o(s.embed_cos_mean, &|v| format!("{v:.5}")),
            o(s.kl_mean, &fmt_kl),
            o(s.kl_max, &fmt_kl),
            o(s.top1, &|v| format!("{v:.3}")),
            o(s.dloglik_per_answer, &|v| format!("{v:+.3}")),
            o(s.prefix_mean, &|v| format!("{v:.1}")),
            format!("{}/{}", s.identical_answers, s.cases_done),
            if s.json_fields > 0 { format!("{}/{}", s.json_equal, s.json_fields) } else { "-".into() },
            o(s.encode_s_per_tile, &|v| format!("{v:.3}")),
            o(s.prefill_tok_s, &|v| format!("{v:.1}")),
            o(s.decode_tok_s, &|v| format!("{v:.1}")),
            s.peak_rss_bytes.map_or("-".into(), |b| format!("{:.0}", b as f64 / 1e6)),
            format!("{}/{}", s.cases_done, s.cases_total),
        ];
        t.push_str("<tr>");
        for c in cells {
            t.push_str(&format!("<td>{c}</td>"));
        }
        t.push_str("</tr>");
    }
    t.push_str("</tbody></table>");
    t
}

/// The whole page.
pub fn page(r: &Report) -> String {
    let sums = r.summaries();
    let kl: Vec<(String, Option<f64>)> = sums.iter().map(|s| (s.name.clone(), s.kl_mean)).collect();
    let kl_max = kl.iter().filter_map(|k| k.1).fold(0.0, f64::max);
    let top1: Vec<(String, Option<f64>)> = sums.iter().map(|s| (s.name.clone(), s.top1)).collect();
    let m = &r.machine;
    let mut cases = String::from("<ul>");
    for p in &r.fingerprint.prompts {
        cases.push_str(&format!("<li>prompt: {}</li>", esc(p)));
    }
    cases.push_str(&format!(
        "<li>{} image(s), {} case(s) (image × prompt), up to {} new tokens per answer{}</li></ul>",
        r.fingerprint.images.len(),
        r.cases.len(),
        r.fingerprint.max_new_tokens,
        if r.fingerprint.json_template { ", answers constrained to the prompt's JSON template" } else { "" }
    ));
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"/><title>h2ovl eval: which quantization?</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}}table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}td:first-child,th:first-child{{text-align:left}}svg{{display:block;margin:1.5em 0;font-size:12px}}svg .t{{font-size:15px;font-weight:bold}}svg .na{{fill:#999}}svg .n{{font-size:10px;font-weight:bold}}p.note{{color:#555;font-size:13px}}</style>
</head><body>
<h1>Which quantization? <small>h2ovl eval</small></h1>
<p>Reference pair: <b>{reference}</b>. Every pair answered the same questions about the same images; KL is KL(reference ‖ candidate) in nats per answer token, teacher-forced along the reference's greedy answer; top-1 is the share of those positions where both pick the same most likely token; ΔLL is the candidate's log-likelihood of the reference answer minus the reference's own.</p>
{cases}
{table}
{kl_chart}
{top1_chart}
{scatter}
<p class="note">Measured on {cpu}, {threads} thread(s), load average {load} ({h2ovl}). Speed figures are wall-clock on this machine; rerun on yours. Settings: {settings}.</p>
</body></html>
"#,
        reference = esc(&r.reference.name),
        table = summary_table(&sums),
        kl_chart = bar_chart("Mean KL per token vs the reference (lower is closer)", CHARTS[0], &kl, kl_max * 1.1, &|v| fmt_kl(v)),
        top1_chart = bar_chart("Top-1 agreement with the reference (higher is closer)", CHARTS[1], &top1, 1.0, &|v| format!("{v:.3}")),
        scatter = scatter(&sums),
        cpu = esc(&m.cpu),
        threads = m.threads,
        load = esc(&m.load_average),
        h2ovl = esc(&m.h2ovl),
        settings = esc(&r.fingerprint.settings),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_characters() {
        assert_eq!(esc(r#"<a href="x">&'"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }

    #[test]
    fn bars_scale_to_the_maximum_and_mark_missing_values() {
        let svg = bar_chart("t", "x", &[("a".into(), Some(0.5)), ("b".into(), None)], 1.0, &|v| format!("{v}"));
        let plot_w = W - LABEL_W - 90.0;
        assert!(svg.contains(&format!(r#"width="{:.1}""#, plot_w / 2.0)), "{svg}");
        assert!(svg.contains("n/a") && svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }
}
