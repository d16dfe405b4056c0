//! `charter rollout`: where a channel's phased rollout stands
//! (docs/SPEC.md §9.6), read from its signed pointer in the repository.

use anyhow::{Context, Result, anyhow, bail};
use charter_release::channel::ChannelPointer;
use charter_release::report;
use charter_release::rollout::Rollout;
use jiff::Timestamp;
use serde_json::json;

use super::Ctx;
use super::channel::existing;
use crate::cli::{ChannelAt, RolloutCmd};
use crate::util::{parse_duration, print_json};

pub fn run(ctx: &Ctx, cmd: RolloutCmd) -> Result<()> {
    match cmd {
        RolloutCmd::Status {
            on,
            at,
            reports,
            chart,
            fleet_size,
        } => {
            let p = pointer(&on)?;
            let now = match &at {
                None => Timestamp::now(),
                Some(text) => when(text, Timestamp::now())?,
            };
            let counts = match &reports.reports {
                Some(src) => Some(count(&read_reports(src)?, &p, &reports)?),
                None => None,
            };
            if let Some(path) = &chart {
                let svg = super::rollout_chart::draw(&p, counts.as_ref(), fleet_size, now)?;
                crate::util::write_atomic(path, svg.as_bytes())?;
            }
            status(ctx, &p, now, counts.as_ref())
        }
        RolloutCmd::Watch {
            at,
            reports,
            max_failure_ratio,
            min_reports,
            every,
        } => {
            if !(0.0..=1.0).contains(&max_failure_ratio) {
                bail!("--max-failure-ratio {max_failure_ratio} is not between 0 and 1");
            }
            let Some(src) = &reports.reports else {
                bail!("rollout watch needs --reports DIR|URL and --secret FILE");
            };
            let every = every
                .as_deref()
                .map(|e| {
                    parse_duration(e)
                        .ok()
                        .and_then(|d| d.as_secs().try_into().ok())
                        .filter(|s: &u64| *s > 0)
                        .map(std::time::Duration::from_secs)
                        .ok_or_else(|| anyhow!("--every `{e}` is not a positive duration"))
                })
                .transpose()?;
            loop {
                let p = pointer(&at.on)?;
                let c = count(&read_reports(src)?, &p, &reports)?;
                let verdict = judge(&c, max_failure_ratio, min_reports);
                let halted = p.rollout.as_ref().is_some_and(|r| r.halted.is_some());
                let mut acted = None;
                if let (Some(why), false) = (&verdict, halted) {
                    let (out, _, _) =
                        super::channel::halt(ctx, &at, format!("rollout watch: {why}"), false)?;
                    acted = Some(out);
                }
                print_watch(ctx, &p, &c, verdict.as_deref(), halted, acted.as_deref())?;
                match every {
                    Some(d) if acted.is_none() && !halted => std::thread::sleep(d),
                    _ => return Ok(()),
                }
            }
        }
        RolloutCmd::Secret { out } => {
            let mut secret = zeroize::Zeroizing::new([0u8; 32]);
            getrandom::fill(&mut secret[..])
                .map_err(|e| anyhow!("the system's random source failed: {e}"))?;
            let text = zeroize::Zeroizing::new(format!("{}\n", hex::encode(&secret[..])));
            charter_keys::fsutil::create_private(&out, text.as_bytes())?;
            outln!(
                "wrote {} (mode 0600): keep it with the release keys",
                out.display()
            );
            Ok(())
        }
        RolloutCmd::ReportKey {
            secret,
            license_id,
            out,
        } => {
            if license_id.is_empty() || license_id.len() > report::MAX_LICENSE_ID_BYTES {
                bail!(
                    "--license-id must be 1 to {} bytes",
                    report::MAX_LICENSE_ID_BYTES
                );
            }
            let s = read_secret(&secret)?;
            let key = report::license_key(&s[..], &license_id);
            let text = zeroize::Zeroizing::new(format!(
                "{}\n",
                json!({"license": license_id, "key": hex::encode(&key[..])})
            ));
            charter_keys::fsutil::create_private(&out, text.as_bytes())?;
            outln!(
                "wrote {} (mode 0600): install it on the hosts of license {license_id} as \
                 [rollout] report_key",
                out.display()
            );
            Ok(())
        }
    }
}

/// The channel's pointer, which must exist and verify.
fn pointer(on: &ChannelAt) -> Result<ChannelPointer> {
    existing(&on.repo, &on.product, &on.channel)?.ok_or_else(|| {
        anyhow!(
            "{} has no pointer for {}/{}; `charter channel publish` writes one",
            on.repo.display(),
            on.product,
            on.channel
        )
    })
}

/// The report secret: 64 hex digits in a file only its owner may read.
fn read_secret(path: &std::path::Path) -> Result<zeroize::Zeroizing<[u8; 32]>> {
    let bytes = zeroize::Zeroizing::new(charter_keys::fsutil::read_private(
        path,
        4096,
        "a report secret",
    )?);
    let mut s = zeroize::Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(bytes.trim_ascii(), &mut s[..]).map_err(|_| {
        anyhow!(
            "{} is not a report secret (64 hex digits; `charter rollout secret` writes one)",
            path.display()
        )
    })?;
    Ok(s)
}

/// Most bytes of reports read from one source.
const MAX_REPORTS_BYTES: u64 = 256 << 20;

/// Every line of the report source: the files of a directory (sorted by
/// name), or the body of a URL.
fn read_reports(src: &str) -> Result<Vec<Vec<u8>>> {
    let mut text = Vec::new();
    if src.starts_with("https://") || src.starts_with("http://") {
        let resp = ureq::get(src)
            .call()
            .with_context(|| format!("cannot fetch the reports at {src}"))?;
        let body = charter_keys::fsutil::read_at_most(
            resp.into_body().into_reader(),
            MAX_REPORTS_BYTES,
            0,
        )
        .with_context(|| format!("cannot read the reports at {src}"))?
        .map_err(|_| anyhow!("the reports at {src} are over {MAX_REPORTS_BYTES} bytes"))?;
        text.push(body);
    } else {
        let dir = std::path::Path::new(src);
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read the report directory {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        let mut total = 0u64;
        for f in files {
            let b = charter_keys::fsutil::read_capped(&f, MAX_REPORTS_BYTES, "a report file")?;
            total += b.len() as u64;
            if total > MAX_REPORTS_BYTES {
                bail!(
                    "the reports in {} are over {MAX_REPORTS_BYTES} bytes",
                    dir.display()
                );
            }
            text.push(b);
        }
    }
    Ok(text
        .iter()
        .flat_map(|t| t.split(|b| *b == b'\n'))
        .map(|l| l.trim_ascii().to_vec())
        .filter(|l| !l.is_empty())
        .collect())
}

/// The reports of one wave.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct WaveCount {
    pub(super) healthy: u32,
    pub(super) failed: u32,
}

impl WaveCount {
    pub(super) fn total(self) -> u32 {
        self.healthy + self.failed
    }

    pub(super) fn ratio(self) -> f64 {
        if self.total() == 0 {
            0.0
        } else {
            f64::from(self.failed) / f64::from(self.total())
        }
    }
}

/// The reports of the pointer's version: per wave (0: reported without a
/// plan), and what was left out.
#[derive(Debug, Default)]
pub(super) struct Counts {
    pub(super) waves: std::collections::BTreeMap<u32, WaveCount>,
    /// The counted votes, by time: when, and whether a failure.
    pub(super) votes: Vec<(Timestamp, bool)>,
    /// Lines that do not verify under the secret (or are malformed).
    unverified: u32,
    /// Verified reports of another product or version.
    other: u32,
    /// Reports of hosts past a license's cap.
    capped: u32,
    /// Failures per license, for the operator to see who reports them.
    failed_by_license: std::collections::BTreeMap<String, u32>,
}

/// Verifies and counts: one vote per host (its latest report, by time),
/// at most `max_hosts_per_license` hosts per license.
fn count(lines: &[Vec<u8>], p: &ChannelPointer, args: &crate::cli::ReportsArgs) -> Result<Counts> {
    let Some(path) = &args.secret else {
        bail!("--reports needs --secret FILE (the report secret)");
    };
    let secret = read_secret(path)?;
    let mut c = Counts::default();
    let mut latest: std::collections::BTreeMap<(String, String), report::Report> =
        std::collections::BTreeMap::new();
    let mut seen = std::collections::BTreeSet::new();
    for l in lines {
        let r = match report::Report::verify(l, |id| *report::license_key(&secret[..], id)) {
            Ok(r) => r,
            Err(_) => {
                c.unverified += 1;
                continue;
            }
        };
        if r.product != p.product || r.version != p.version {
            c.other += 1;
            continue;
        }
        if !seen.insert(r.id.clone()) {
            continue;
        }
        let k = (r.license.clone(), r.host.clone());
        match latest.get(&k) {
            Some(old) if old.time >= r.time => {}
            _ => {
                latest.insert(k, r);
            }
        }
    }
    let mut per_license: std::collections::BTreeMap<String, u32> = Default::default();
    let mut votes: Vec<_> = latest.into_values().collect();
    votes.sort_by_key(|r| r.time);
    for r in votes {
        let n = per_license.entry(r.license.clone()).or_default();
        if *n >= args.max_hosts_per_license {
            c.capped += 1;
            continue;
        }
        *n += 1;
        c.votes.push((r.time, r.outcome.is_failure()));
        let w = c.waves.entry(r.wave.unwrap_or(0)).or_default();
        if r.outcome.is_failure() {
            w.failed += 1;
            *c.failed_by_license.entry(r.license.clone()).or_default() += 1;
        } else {
            w.healthy += 1;
        }
    }
    Ok(c)
}

/// Why the rollout must halt, if it must: the first wave whose failure
/// ratio passes `max` with at least `min` reports.
fn judge(c: &Counts, max: f64, min: u32) -> Option<String> {
    c.waves.iter().find_map(|(wave, n)| {
        (n.total() >= min.max(1) && n.ratio() > max).then(|| {
            format!(
                "wave {wave}: {} of {} reports failed ({:.1}% > {:.1}%)",
                n.failed,
                n.total(),
                n.ratio() * 100.0,
                max * 100.0
            )
        })
    })
}

fn counts_json(c: &Counts) -> serde_json::Value {
    json!({
        "waves": c.waves.iter().map(|(w, n)| json!({
            "wave": w, "reports": n.total(), "healthy": n.healthy, "failed": n.failed,
            "failure_ratio": (n.ratio() * 10_000.0).round() / 10_000.0,
        })).collect::<Vec<_>>(),
        "unverified": c.unverified,
        "other_versions": c.other,
        "capped": c.capped,
        "failed_by_license": c.failed_by_license,
    })
}

fn print_counts(c: &Counts) -> Result<()> {
    for (w, n) in &c.waves {
        let name = if *w == 0 {
            "no plan".to_owned()
        } else {
            format!("wave {w}")
        };
        outln!(
            "  {name}: {} report(s), {} healthy, {} failed ({:.1}%)",
            n.total(),
            n.healthy,
            n.failed,
            n.ratio() * 100.0
        );
    }
    if c.waves.is_empty() {
        outln!("  no reports of this version yet");
    }
    if c.unverified + c.other + c.capped > 0 {
        outln!(
            "  left out: {} that do not verify, {} of other versions, {} past a license's cap",
            c.unverified,
            c.other,
            c.capped
        );
    }
    Ok(())
}

fn print_watch(
    ctx: &Ctx,
    p: &ChannelPointer,
    c: &Counts,
    verdict: Option<&str>,
    was_halted: bool,
    acted: Option<&std::path::Path>,
) -> Result<()> {
    if ctx.json {
        return print_json(&json!({
            "product": p.product,
            "channel": p.channel,
            "version": p.version.to_string(),
            "counts": counts_json(c),
            "verdict": verdict,
            "halted_before": was_halted,
            "halted_now": acted.is_some(),
        }));
    }
    outln!("{}/{}: {}", p.product, p.channel, p.version);
    print_counts(c)?;
    match (verdict, was_halted, acted) {
        (_, true, _) => outln!("the rollout is halted already; nothing to do"),
        (Some(why), _, Some(out)) => {
            outln!("HALTED: {why} ({} re-signed)", out.display())
        }
        _ => outln!("within the threshold: the rollout goes on"),
    }
    Ok(())
}

/// `--at`: an RFC 3339 time, or a duration from now.
fn when(text: &str, now: Timestamp) -> Result<Timestamp> {
    if let Ok(t) = text.parse::<Timestamp>() {
        return Ok(t);
    }
    let d = parse_duration(text).with_context(|| {
        format!("--at `{text}` is neither a duration (1d) nor an RFC 3339 time")
    })?;
    now.checked_add(d)
        .map_err(|_| anyhow!("--at `{text}` is out of range"))
}

/// Where each wave stands at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WaveState {
    Done,
    InProgress,
    ToCome,
}

impl WaveState {
    fn name(self) -> &'static str {
        match self {
            WaveState::Done => "done",
            WaveState::InProgress => "in progress",
            WaveState::ToCome => "to come",
        }
    }
}

/// The rollout at `now`: the instant the plan is read at (the halt's, when
/// halted: a halted plan does not move), each wave's end and state, the
/// wave in progress and the share of positions eligible.
struct Standing {
    at: Timestamp,
    waves: Vec<(Timestamp, u8, WaveState)>,
    wave: usize,
    share: f64,
}

fn standing(r: &Rollout, now: Timestamp) -> Standing {
    let at = r.halted.as_ref().map_or(now, |h| h.at.min(now));
    let wave = r.wave_at(at);
    let waves = r
        .waves
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let ends = r
                .start
                .checked_add(jiff::SignedDuration::from_secs(w.after_secs as i64))
                .unwrap_or(r.start);
            let state = if ends <= at {
                WaveState::Done
            } else if i + 1 == wave {
                WaveState::InProgress
            } else {
                WaveState::ToCome
            };
            (ends, w.percent, state)
        })
        .collect();
    Standing {
        at,
        waves,
        wave,
        share: r.share_at(at),
    }
}

fn status(ctx: &Ctx, p: &ChannelPointer, now: Timestamp, counts: Option<&Counts>) -> Result<()> {
    let s = p.rollout.as_ref().map(|r| (r, standing(r, now)));
    if ctx.json {
        let rollout = s.as_ref().map(|(r, s)| {
            json!({
                "plan": r.plan,
                "start": r.start.to_string(),
                "halted": r.halted,
                "waves": s.waves.iter().map(|(ends, percent, state)| json!({
                    "percent": percent,
                    "ends": ends.to_string(),
                    "state": state.name(),
                })).collect::<Vec<_>>(),
                "wave": s.wave,
                "eligible_percent": (s.share * 100.0).round() / 100.0,
                "eligible_below_position": (s.share * 100.0).floor() as u32,
            })
        });
        return print_json(&json!({
            "product": p.product,
            "channel": p.channel,
            "version": p.version.to_string(),
            "published_at": p.published_at.to_string(),
            "expires": p.expires.to_string(),
            "at": now.to_string(),
            "previous": p.previous.as_ref().map(|x| x.version.to_string()),
            "reverted": p.reverted,
            "rollout": rollout,
            "reports": counts.map(counts_json),
        }));
    }
    outln!(
        "{}/{}: {} (published {}, expires {})",
        p.product,
        p.channel,
        p.version,
        p.published_at,
        p.expires
    );
    if let Some(prev) = &p.previous {
        outln!("previous: {}", prev.version);
    }
    if let Some(r) = &p.reverted {
        outln!(
            "reverted: from {} at {}{}; hosts that run it go back to {}",
            r.version,
            r.at,
            if r.reason.is_empty() {
                String::new()
            } else {
                format!(" ({})", r.reason)
            },
            p.version
        );
    }
    if let Some(c) = counts {
        outln!("reports:");
        print_counts(c)?;
    }
    let Some((r, s)) = s else {
        outln!("rollout: none: every host is eligible at once");
        return Ok(());
    };
    outln!("rollout: plan `{}`, from {}", r.plan, r.start);
    for (i, (ends, percent, state)) in s.waves.iter().enumerate() {
        outln!(
            "  wave {}: {percent:>3}% by {ends}  {}",
            i + 1,
            state.name()
        );
    }
    match &r.halted {
        Some(h) => outln!(
            "HALTED at {}{}: {:.2}% of hosts were eligible (wave {} of {}); \
             `charter channel resume` goes on from there",
            h.at,
            if h.reason.is_empty() {
                String::new()
            } else {
                format!(" ({})", h.reason)
            },
            s.share,
            s.wave,
            r.waves.len()
        ),
        None => outln!(
            "at {}: wave {} of {}, {:.2}% of hosts eligible (positions below {})",
            s.at,
            s.wave,
            r.waves.len(),
            s.share,
            (s.share * 100.0).floor() as u32
        ),
    }
    Ok(())
}
