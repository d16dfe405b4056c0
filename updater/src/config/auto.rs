//! The `[update]` settings of unattended updates (docs/SPEC.md §11.12),
//! parsed: what the host may install by itself (`automatic`), when
//! (maintenance `windows` in the host's or a named time zone) and how long
//! a release must have been out first (`min_age`). Deciding with them is
//! [`crate::policy::auto`]'s.

use charter_release::duration::parse_duration;
use jiff::civil::Time;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Zoned};
use serde::Deserialize;

/// `[update] automatic`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Automatic {
    /// Verify what the channel offers and report it; install nothing
    /// (the default).
    #[default]
    Check,
    /// Install releases whose signed manifest says `security_fix`.
    Security,
    /// Install every newer release.
    All,
}

impl Automatic {
    /// The config value.
    pub fn name(self) -> &'static str {
        match self {
            Automatic::Check => "check",
            Automatic::Security => "security",
            Automatic::All => "all",
        }
    }
}

/// One maintenance window: days of the week and a time span, e.g.
/// `Sun 02:00-05:00`, `Mon-Fri 01:00-03:30`, `Sat,Sun 00:00-24:00`,
/// `* 22:00-02:00` (a span whose end is not after its start crosses
/// midnight and belongs to the day it starts on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Monday first.
    days: [bool; 7],
    /// Minutes after midnight.
    start: u16,
    /// Minutes after midnight, 1..=1440.
    end: u16,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day_index(s: &str) -> Option<usize> {
    let s = s.to_ascii_lowercase();
    DAYS.iter().position(|d| s == *d)
}

fn minutes(s: &str, end: bool) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) if end => Some(1440),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

impl std::str::FromStr for Window {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!(
                "window `{text}`: {why} (expected DAYS HH:MM-HH:MM, e.g. `Sun 02:00-05:00`, \
                 `Mon-Fri 01:00-03:00`, `* 22:00-02:00`)"
            )
        };
        let mut parts = text.split_whitespace();
        let (Some(days_spec), Some(span), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("two parts are needed"));
        };
        let mut days = [false; 7];
        if days_spec == "*" || days_spec.eq_ignore_ascii_case("daily") {
            days = [true; 7];
        } else {
            for item in days_spec.split(',') {
                match item.split_once('-') {
                    Some((a, b)) => {
                        let (Some(a), Some(b)) = (day_index(a), day_index(b)) else {
                            return Err(bad("unknown day name"));
                        };
                        // Mon-Fri, or a range that wraps (Fri-Mon).
                        let mut i = a;
                        loop {
                            days[i] = true;
                            if i == b {
                                break;
                            }
                            i = (i + 1) % 7;
                        }
                    }
                    None => match day_index(item) {
                        Some(i) => days[i] = true,
                        None => return Err(bad("unknown day name")),
                    },
                }
            }
        }
        let (s, e) = span
            .split_once('-')
            .ok_or_else(|| bad("no `-` in the time span"))?;
        let start = minutes(s, false).ok_or_else(|| bad("start is not HH:MM"))?;
        let end = minutes(e, true).ok_or_else(|| bad("end is not HH:MM (24:00 allowed)"))?;
        if start == end {
            return Err(bad("empty span"));
        }
        let w = Window { days, start, end };
        if w.minutes() < 60 {
            return Err(bad(
                "shorter than an hour: charter-update.timer starts `auto` hourly, \
                 up to 15 minutes late, and could miss it",
            ));
        }
        Ok(w)
    }
}

impl Window {
    fn crosses_midnight(&self) -> bool {
        self.end <= self.start
    }

    /// Its length in minutes.
    fn minutes(&self) -> u16 {
        if self.crosses_midnight() {
            1440 - self.start + self.end
        } else {
            self.end - self.start
        }
    }

    /// Whether local time `now` is inside the window.
    pub fn contains(&self, now: &Zoned) -> bool {
        let wd = now.weekday().to_monday_zero_offset() as usize;
        let m = (now.hour() as u16) * 60 + now.minute() as u16;
        if self.crosses_midnight() {
            (self.days[wd] && m >= self.start) || (self.days[(wd + 6) % 7] && m < self.end)
        } else {
            self.days[wd] && m >= self.start && m < self.end
        }
    }

    /// The next instant after `now` at which the window opens.
    pub fn next_start(&self, now: &Zoned) -> Option<Zoned> {
        let h = (self.start / 60) as i8;
        let m = (self.start % 60) as i8;
        let at = Time::new(h, m, 0, 0).ok()?;
        (0..8).find_map(|d| {
            let date = now.date().checked_add(jiff::Span::new().days(d)).ok()?;
            let wd = date.weekday().to_monday_zero_offset() as usize;
            if !self.days[wd] {
                return None;
            }
            let z = date
                .to_datetime(at)
                .to_zoned(now.time_zone().clone())
                .ok()?;
            (z > *now).then_some(z)
        })
    }
}

/// The `[update]` fields that govern `auto`, parsed.
#[derive(Debug, Clone)]
pub struct AutoPolicy {
    /// What may be installed.
    pub automatic: Automatic,
    /// When (none: any time).
    pub windows: Vec<Window>,
    /// How long a release must have been out.
    pub min_age: SignedDuration,
    /// As written in the config, for messages.
    pub min_age_text: String,
    /// The zone the windows are in.
    pub tz: TimeZone,
    /// Its name, for messages.
    pub tz_name: String,
}

impl AutoPolicy {
    /// Parses the config's strings; messages name the field.
    pub fn new(
        automatic: Automatic,
        windows: &[String],
        min_age: Option<&str>,
        timezone: Option<&str>,
    ) -> Result<Self, String> {
        let windows = windows
            .iter()
            .map(|w| w.parse().map_err(|e| format!("update.windows: {e}")))
            .collect::<Result<Vec<Window>, String>>()?;
        let min_age_text =
            |d: SignedDuration| min_age.map_or_else(|| format!("{d:#}"), |t| t.trim().to_owned());
        let min_age = match min_age {
            Some(t) => {
                let d = parse_duration(t).map_err(|e| format!("update.min_age: {e}"))?;
                if d.is_negative() {
                    return Err("update.min_age must not be negative".into());
                }
                d
            }
            None => SignedDuration::ZERO,
        };
        let (tz, tz_name) = match timezone {
            // UTC needs no time zone database.
            Some(name) if name.eq_ignore_ascii_case("UTC") => (TimeZone::UTC, "UTC".to_owned()),
            Some(name) => (
                TimeZone::get(name).map_err(|e| {
                    format!("update.timezone `{name}` is not a known time zone: {e}")
                })?,
                name.to_owned(),
            ),
            None => {
                let tz = TimeZone::system();
                let name = tz
                    .iana_name()
                    .unwrap_or("the system's time zone")
                    .to_owned();
                (tz, name)
            }
        };
        Ok(AutoPolicy {
            automatic,
            windows,
            min_age,
            min_age_text: min_age_text(min_age),
            tz,
            tz_name,
        })
    }
}

impl AutoPolicy {
    /// One line for `status`.
    pub fn describe(&self, windows: &[String]) -> String {
        let what = match self.automatic {
            Automatic::Check => return "nothing by itself (update.automatic = \"check\")".into(),
            Automatic::Security => "signed security fixes",
            Automatic::All => "every newer release",
        };
        let when = if windows.is_empty() {
            "at any time".to_owned()
        } else {
            format!("in {} ({})", windows.join(", "), self.tz_name)
        };
        if self.min_age.is_zero() {
            format!("{what}, {when}")
        } else {
            format!("{what}, {when}, once out for {}", self.min_age_text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;

    fn utc(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn policy(automatic: Automatic, windows: &[&str], min_age: Option<&str>) -> AutoPolicy {
        let w: Vec<String> = windows.iter().map(|s| s.to_string()).collect();
        AutoPolicy::new(automatic, &w, min_age, Some("UTC")).unwrap()
    }

    #[test]
    fn windows_parse_and_contain() {
        // 2026-11-22 is a Sunday.
        let sun_0300 = utc("2026-11-22T03:00:00Z").to_zoned(TimeZone::UTC);
        let sun_0600 = utc("2026-11-22T06:00:00Z").to_zoned(TimeZone::UTC);
        let mon_0100 = utc("2026-11-23T01:00:00Z").to_zoned(TimeZone::UTC);
        let w: Window = "Sun 02:00-05:00".parse().unwrap();
        assert!(w.contains(&sun_0300) && !w.contains(&sun_0600) && !w.contains(&mon_0100));
        let night: Window = "sun 22:00-02:00".parse().unwrap();
        assert!(night.contains(&mon_0100), "crosses midnight into Monday");
        assert!(!night.contains(&sun_0300));
        let weekdays: Window = "Mon-Fri 00:00-24:00".parse().unwrap();
        assert!(weekdays.contains(&mon_0100) && !weekdays.contains(&sun_0300));
        let wrap: Window = "Fri-Mon 00:00-24:00".parse().unwrap();
        assert!(wrap.contains(&sun_0300) && wrap.contains(&mon_0100));
        let list: Window = "Sat,Sun 02:30-03:30".parse().unwrap();
        assert!(list.contains(&sun_0300));
        let all: Window = "* 00:00-24:00".parse().unwrap();
        assert!(all.contains(&sun_0600));
        for bad in [
            "Sun",
            "Sun 02:00",
            "Funday 02:00-03:00",
            "Sun 2:00-03:00",
            "Sun 02:00-25:00",
            "Sun 24:00-02:00",
            "Sun 02:00-02:00",
            "Sun 02:00-02:59",
            "Sun +2:00-03:00",
            "Sun 02:00-03:00 extra",
        ] {
            let e = bad.parse::<Window>().unwrap_err();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn next_window_start() {
        let now = utc("2026-11-22T06:00:00Z").to_zoned(TimeZone::UTC); // Sunday
        let w: Window = "Sun 02:00-05:00".parse().unwrap();
        assert_eq!(
            w.next_start(&now).unwrap().timestamp(),
            utc("2026-11-29T02:00:00Z")
        );
        let w: Window = "Mon-Fri 01:30-03:00".parse().unwrap();
        assert_eq!(
            w.next_start(&now).unwrap().timestamp(),
            utc("2026-11-23T01:30:00Z")
        );
        let w: Window = "Sun 07:00-08:00".parse().unwrap();
        assert_eq!(
            w.next_start(&now).unwrap().timestamp(),
            utc("2026-11-22T07:00:00Z")
        );
    }

    #[test]
    fn policies_describe_themselves() {
        let p = policy(Automatic::All, &["Sun 02:00-05:00"], Some("2d"));
        assert_eq!(
            p.describe(&["Sun 02:00-05:00".into()]),
            "every newer release, in Sun 02:00-05:00 (UTC), once out for 2d"
        );
        let p = policy(Automatic::Security, &[], None);
        assert_eq!(p.describe(&[]), "signed security fixes, at any time");
        let p = policy(Automatic::Check, &[], None);
        assert!(p.describe(&[]).contains("nothing by itself"));
    }

    #[test]
    fn policy_errors_name_the_field() {
        let e = AutoPolicy::new(Automatic::All, &["Sun".into()], None, None).unwrap_err();
        assert!(e.starts_with("update.windows"), "{e}");
        let e = AutoPolicy::new(Automatic::All, &[], Some("soon"), None).unwrap_err();
        assert!(e.starts_with("update.min_age"), "{e}");
        let e = AutoPolicy::new(Automatic::All, &[], None, Some("Mars/Olympus")).unwrap_err();
        assert!(e.starts_with("update.timezone"), "{e}");
        let p = AutoPolicy::new(Automatic::All, &[], None, Some("Europe/Berlin")).unwrap();
        assert_eq!(p.tz_name, "Europe/Berlin");
        assert_eq!(
            parse_duration("2w").unwrap(),
            SignedDuration::from_hours(336)
        );
        assert!(parse_duration("5").is_err() && parse_duration("5y").is_err());
    }
}
