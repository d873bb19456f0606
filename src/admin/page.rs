//! `/`: the status as a page an operator reads at a glance. First a summary (names up,
//! degraded, failing open, failing closed; members up; the last reload), then the names
//! that need attention, the recent state changes, the healthy names, and a form that
//! explains an answer. Plain HTML and CSS, no script: wide tables scroll inside their own
//! box, so the page itself never overflows a phone's width.

use std::fmt::Write;
use std::time::SystemTime;

use super::Explanation;
use super::status::{ClusterStatus, MemberStatus, NameStatus, Status, unix};
use crate::model::events::Event;

const STYLE: &str = "\
body{font:14px system-ui,sans-serif;margin:0 auto;padding:1em;max-width:1400px;color:#222}\
h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.15em;margin:1.2em 0 .3em}h3{font-size:1em;margin:1em 0 .2em;word-break:break-all}\
.scroll{overflow-x:auto;margin:.3em 0 1em}table{border-collapse:collapse}\
td,th{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}\
.up,.down,.role,.open{color:#fff;padding:0 .45em;border-radius:3px;white-space:nowrap}\
.up{background:#2a7}.down{background:#c33}.role{background:#37a}.open{background:#c33;font-weight:bold}\
.muted{color:#777}.err{background:#fee;border:1px solid #c33;padding:.5em;overflow-x:auto}\
.cards{display:flex;flex-wrap:wrap;gap:.6em;margin:.6em 0}\
.card{border:1px solid #ddd;border-radius:6px;padding:.4em .8em;min-width:7em}\
.card b{display:block;font-size:1.5em}.card.bad{border-color:#c33;background:#fee}\
form{display:flex;flex-wrap:wrap;gap:.4em;align-items:center}\
input,select,button{font:inherit;padding:.2em .4em}pre{white-space:pre-wrap;word-break:break-word}";

pub(super) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn ago(now: u64, t: u64) -> String {
    let s = now.saturating_sub(t);
    match s {
        0..=119 => format!("{s}s ago"),
        120..=7199 => format!("{}m ago", s / 60),
        _ => format!("{}h ago", s / 3600),
    }
}

fn head(h: &mut String, title: &str, refresh: bool) {
    h.push_str("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    if refresh {
        h.push_str("<meta http-equiv=\"refresh\" content=\"5\">");
    }
    let _ = write!(
        h,
        "<title>{}</title><style>{STYLE}</style></head><body>",
        esc(title)
    );
}

/// The explain form, filled with the last question.
fn explain_form(h: &mut String, name: &str, qtype: &str, client: &str) {
    let _ = write!(
        h,
        "<h2>Explain an answer</h2><form action=\"/explain\" method=\"get\">\
         <input type=\"hidden\" name=\"format\" value=\"html\">\
         <input name=\"name\" placeholder=\"vault.kemp.local\" value=\"{}\" required size=\"24\">\
         <input name=\"type\" value=\"{}\" size=\"6\" aria-label=\"type\">\
         <input name=\"client\" placeholder=\"client IP (default: you)\" value=\"{}\" size=\"22\">\
         <button>Explain</button></form>",
        esc(name),
        esc(qtype),
        esc(client)
    );
}

pub fn page(s: &Status, events: &[Event]) -> String {
    let now = unix(SystemTime::now());
    let mut h = String::new();
    head(&mut h, "Meridian", true);
    let _ = write!(
        h,
        "<h1>Meridian</h1><p class=\"muted\">{} &middot; {} &middot; listening on {}</p>",
        esc(s.version),
        esc(&s.config_file),
        esc(&s.listen.join(", "))
    );
    summary(&mut h, s, now);
    if let Some(c) = &s.cluster {
        cluster_line(&mut h, c);
    }
    if let Some(e) = &s.last_reload_error {
        let _ = write!(
            h,
            "<div class=\"err\"><b>Last reload failed ({}); the previous configuration is serving:</b><pre>",
            ago(now, e.at)
        );
        for line in &e.errors {
            let _ = writeln!(h, "{}", esc(line));
        }
        h.push_str("</pre></div>");
    }
    let (attention, healthy): (Vec<&NameStatus>, Vec<&NameStatus>) =
        s.names.iter().partition(|n| n.state != "up");
    if !attention.is_empty() {
        h.push_str("<h2>Needs attention</h2>");
        for n in &attention {
            name_section(&mut h, n, now);
        }
    }
    recent_changes(&mut h, events, now);
    if !s.transitions.is_empty() {
        h.push_str("<h2>Last failovers</h2><div class=\"scroll\"><table><tr><th>name</th><th>member</th><th>first failed probe</th><th>out of answers after</th><th>last TTL expired after</th><th>reason</th></tr>");
        for t in &s.transitions {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1} s</td><td>{:.1} s</td><td>{}</td></tr>",
                esc(&t.name),
                esc(&t.member),
                ago(now, t.first_failure),
                t.out_of_answers_s,
                t.until_ttl_expiry_s,
                esc(&t.reason)
            );
        }
        h.push_str("</table></div>");
    }
    if !healthy.is_empty() {
        h.push_str("<h2>Healthy</h2>");
        for n in &healthy {
            name_section(&mut h, n, now);
        }
    }
    explain_form(&mut h, "", "A", "");
    h.push_str("<p class=\"muted\">JSON: <a href=\"/status\">/status</a> &middot; <a href=\"/events\">/events</a> &middot; <a href=\"/metrics\">/metrics</a></p></body></html>");
    h
}

fn summary(h: &mut String, s: &Status, now: u64) {
    let m = &s.summary;
    let card = |h: &mut String, n: usize, label: &str, bad: bool| {
        let class = if bad && n > 0 { "card bad" } else { "card" };
        let _ = write!(h, "<div class=\"{class}\"><b>{n}</b>{label}</div>");
    };
    h.push_str("<div class=\"cards\">");
    card(h, m.names_up, "names up", false);
    card(h, m.names_degraded, "degraded", true);
    card(h, m.names_failing_open, "failing open", true);
    card(h, m.names_failing_closed, "failing closed", true);
    let _ = write!(
        h,
        "<div class=\"card{}\"><b>{} / {}</b>members up</div>",
        if m.members_up < m.members { " bad" } else { "" },
        m.members_up,
        m.members
    );
    let reload = match &s.last_reload_error {
        Some(e) => format!("<b>failed</b>last reload {}", ago(now, e.at)),
        None => format!("<b>ok</b>loaded {}", ago(now, s.last_good_load)),
    };
    let _ = write!(
        h,
        "<div class=\"card{}\">{reload} &middot; {} ok, {} failed</div></div>",
        if s.last_reload_error.is_some() {
            " bad"
        } else {
            ""
        },
        s.reloads_ok,
        s.reloads_failed
    );
}

/// The cluster in one line, and a warning when it is cut off or a peer serves other zones.
fn cluster_line(h: &mut String, c: &ClusterStatus) {
    let peers: Vec<String> = c
        .peers
        .iter()
        .map(|p| {
            let config = if p.same_config { "" } else { ", other zones" };
            format!("{} ({}{config})", p.address, p.state)
        })
        .collect();
    let _ = write!(
        h,
        "<p class=\"muted\">cluster: {} &middot; zones {} &middot; peers: {}{}</p>",
        esc(c.address.as_deref().unwrap_or("-")),
        c.fingerprint,
        esc(&if peers.is_empty() {
            "none live".to_string()
        } else {
            peers.join(", ")
        }),
        if c.unreachable.is_empty() {
            String::new()
        } else {
            format!(" &middot; not reached: {}", esc(&c.unreachable.join(", ")))
        }
    );
    if c.isolated {
        h.push_str("<div class=\"err\"><b>Cut off from every peer:</b> each name decides by this server's own probes.</div>");
    }
    if c.config_mismatch > 0 {
        let _ = write!(
            h,
            "<div class=\"err\"><b>{} peer(s) serve other zones</b> (their zone fingerprint differs from {}).</div>",
            c.config_mismatch, c.fingerprint
        );
    }
}

fn recent_changes(h: &mut String, events: &[Event], now: u64) {
    if events.is_empty() {
        return;
    }
    let _ = write!(
        h,
        "<h2>Recent changes</h2><p class=\"muted\">the last {} member state changes, newest first (<a href=\"/events\">/events</a>)</p>",
        events.len()
    );
    h.push_str("<div class=\"scroll\"><table><tr><th>when</th><th>name</th><th>member</th><th>change</th><th>reason</th></tr>");
    for e in events {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} &rarr; {}</td><td>{}</td></tr>",
            ago(now, e.at_ms / 1000),
            esc(&e.name),
            e.member,
            esc(&e.from),
            esc(&e.to),
            esc(&e.reason)
        );
    }
    h.push_str("</table></div>");
}

fn name_section(h: &mut String, n: &NameStatus, now: u64) {
    let state = match n.state {
        "up" => "<span class=\"up\">up</span>".to_string(),
        "failing open" => {
            "<span class=\"open\">failing open</span> every member is down; answering them all (when-all-down: all)".to_string()
        }
        "failing closed" => {
            "<span class=\"down\">failing closed</span> every member is down; answering none (when-all-down: none)".to_string()
        }
        other => format!("<span class=\"down\">{other}</span>"),
    };
    let _ = write!(
        h,
        "<h3>{}</h3><p>{state} <span class=\"muted\">&middot; {} &middot; ttl {}</span></p>",
        esc(&n.name),
        n.policy,
        n.ttl
    );
    if !n.roles.is_empty() {
        let tiers: Vec<String> = n.roles.iter().map(|t| t.join(" or ")).collect();
        let answering = match n.answering_tier {
            Some(t) => format!("tier {t} ({}) answers", esc(&tiers[t - 1])),
            None => "no tier has a member up".to_string(),
        };
        let _ = write!(
            h,
            "<p>roles, in order: {} &middot; {answering}",
            esc(&tiers.join(", then "))
        );
        if let Some(l) = &n.leader {
            let _ = write!(
                h,
                " &middot; leader: {} ({}, named by {} of {} voting)",
                esc(l.leader.as_deref().unwrap_or("none")),
                l.agreement,
                l.votes,
                l.voters
            );
        }
        h.push_str("</p>");
        if let Some(l) = n.leader.as_ref().filter(|l| l.split_brain) {
            let _ = write!(
                h,
                "<div class=\"err\"><b>Split brain:</b> {} all claim the leader role; {}</div>",
                esc(&l.claimants.join(", ")),
                match &l.leader {
                    Some(x) => format!("the majority names {}, which alone is handed out.", esc(x)),
                    None => "no majority names one, so none is handed out as the leader.".into(),
                }
            );
        }
    }
    h.push_str("<div class=\"scroll\"><table><tr><th>member</th><th>state</th><th>weight</th><th>site</th><th>check</th><th>last result</th><th>latency</th><th>since</th><th>changes (1 h)</th><th>answers</th></tr>");
    for m in &n.members {
        member_rows(h, n, m, now);
    }
    h.push_str("</table></div>");
}

fn member_state(n: &NameStatus, m: &MemberStatus) -> String {
    if let (true, Some(role)) = (m.up, &m.role) {
        let leads = n.leader.as_ref().and_then(|l| l.leader.as_ref()) == Some(&m.address);
        let class = if leads { "up" } else { "role" };
        return format!("<span class=\"{class}\">{}</span>", esc(role));
    }
    if m.up {
        return "<span class=\"up\">up</span>".to_string();
    }
    if !m.enabled {
        return "<span class=\"down\">disabled</span>".to_string();
    }
    if m.maintenance {
        return "<span class=\"down\">maintenance</span>".to_string();
    }
    if let Some(d) = &m.drain {
        if d.safe {
            return "<span class=\"role\">drained: safe to stop</span>".to_string();
        }
        let waiting = if d.not_returned.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = d.not_returned.iter().map(ToString::to_string).collect();
            format!(" (waiting for {})", esc(&list.join(", ")))
        };
        return format!(
            "<span class=\"role\">draining</span> TTL {}, {} of {} resolvers back{waiting}",
            if d.ttl_passed { "passed" } else { "not passed" },
            d.returned,
            d.received,
        );
    }
    if m.held && m.checks.iter().all(|c| c.up) {
        return "<span class=\"down\">held down, waiting for an operator</span>".to_string();
    }
    match &m.role {
        Some(role) => format!("<span class=\"down\">down: {}</span>", esc(role)),
        None => "<span class=\"down\">down</span>".to_string(),
    }
}

fn member_rows(h: &mut String, n: &NameStatus, m: &MemberStatus, now: u64) {
    let rows = m.checks.len().max(1);
    let _ = write!(
        h,
        "<tr><td rowspan=\"{rows}\">{}</td><td rowspan=\"{rows}\">{}</td><td rowspan=\"{rows}\">{}</td><td rowspan=\"{rows}\">{}</td>",
        esc(&m.address),
        member_state(n, m),
        m.weight,
        esc(m.site.as_deref().unwrap_or("-"))
    );
    if m.checks.is_empty() {
        let _ = write!(
            h,
            "<td class=\"muted\">none</td><td></td><td></td><td></td><td></td><td>{}</td></tr>",
            m.answers
        );
    }
    for (i, c) in m.checks.iter().enumerate() {
        if i > 0 {
            h.push_str("<tr>");
        }
        let mark = if c.up { "up" } else { "down" };
        // With a quorum, the reason says how the views were counted.
        let reason = match &c.quorum {
            Some(q) => format!("{} ({})", c.reason.as_deref().unwrap_or("-"), q.why),
            None => c.reason.clone().unwrap_or_else(|| "-".into()),
        };
        let _ = write!(
            h,
            "<td><span class=\"{mark}\">{mark}</span> {}</td><td>{}</td><td>{}</td><td>{}</td>",
            esc(&c.probe),
            esc(&reason),
            c.latency_ms.map_or("-".into(), |l| format!("{l:.1} ms")),
            ago(now, c.since)
        );
        if i == 0 {
            let flaps = if m.flapping {
                format!(
                    "<span class=\"down\">flapping</span> {}",
                    m.changes_last_hour
                )
            } else {
                m.changes_last_hour.to_string()
            };
            let _ = write!(
                h,
                "<td rowspan=\"{rows}\">{flaps}</td><td rowspan=\"{rows}\">{}</td>",
                m.answers
            );
        }
        h.push_str("</tr>");
    }
}

/// The answer to the explain form: the explanation as the CLI prints it, and the form
/// again.
pub fn explain_page(question: (&str, &str, &str), answer: Result<&Explanation, &str>) -> String {
    let mut h = String::new();
    head(&mut h, "Meridian: explain", false);
    h.push_str("<h1>Meridian: explain</h1><p><a href=\"/\">&larr; status</a></p>");
    match answer {
        Ok(e) => {
            let _ = write!(h, "<pre>{}</pre>", esc(&e.to_text()));
        }
        Err(message) => {
            let _ = write!(h, "<div class=\"err\">{}</div>", esc(message));
        }
    }
    explain_form(&mut h, question.0, question.1, question.2);
    h.push_str("</body></html>");
    h
}
