//! HTTP dates (RFC 9110 IMF-fixdate), written and read without a date
//! library.

use std::time::{SystemTime, UNIX_EPOCH};

pub(super) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Formats seconds since the Unix epoch as an IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn http_date(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[((days + 4) % 7) as usize], // 1970-01-01 was a Thursday
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
    )
}

/// Parses an HTTP date (IMF-fixdate, RFC 850 or asctime) into seconds since
/// the Unix epoch. None if it is not a date or before 1970.
pub fn parse_http_date(s: &str) -> Option<u64> {
    let (mut day, mut month, mut year, mut time) = (None, None, None, None);
    for tok in s
        .split([' ', ',', '-'])
        .filter(|t| !t.is_empty() && *t != "GMT")
    {
        if let Some(i) = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(tok)) {
            month = Some(i as u64 + 1);
        } else if tok.contains(':') {
            let mut p = tok.split(':').map(|x| x.parse::<u64>().ok());
            let (Some(Some(h)), Some(Some(mi)), Some(Some(se)), None) =
                (p.next(), p.next(), p.next(), p.next())
            else {
                return None;
            };
            if h > 23 || mi > 59 || se > 60 {
                return None;
            }
            time = Some(h * 3600 + mi * 60 + se);
        } else if tok.bytes().all(|b| b.is_ascii_digit()) {
            // The first short number is the day, the next one the year
            // (two-digit years are RFC 850's).
            let n: u64 = tok.parse().ok()?;
            if day.is_none() && tok.len() <= 2 {
                day = Some(n);
            } else if year.is_none() {
                year = Some(match (tok.len(), n) {
                    (2, n) if n < 70 => 2000 + n,
                    (2, n) => 1900 + n,
                    (_, n) => n,
                });
            } else {
                return None;
            }
        } else if DAYS
            .iter()
            .any(|d| tok.get(..3).is_some_and(|t| t.eq_ignore_ascii_case(d)))
        {
            // Day name: ignored.
        } else {
            return None;
        }
    }
    let (day, month, year, time) = (day?, month?, year?, time?);
    if !(1..=31).contains(&day) || year < 1970 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + time)
}

/// (year, month 1..=12, day 1..=31) of a day count since 1970-01-01
/// (Howard Hinnant's algorithm, restricted to dates after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// Days since 1970-01-01 of a date at or after 1970.
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y % 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
