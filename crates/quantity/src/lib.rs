//! Kubernetes resource quantities (`100m`, `1.5`, `128Mi`, `1e3`, `10G`),
//! held exactly in thousandths so that cpu and memory arithmetic never rounds.

use serde_json::Value;

/// A quantity in milli-units (1 cpu = 1000, 1 byte = 1000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Quantity(pub i128);

const SUFFIXES: &[(&str, i128, bool)] = &[
    ("Ki", 1 << 10, true),
    ("Mi", 1 << 20, true),
    ("Gi", 1 << 30, true),
    ("Ti", 1 << 40, true),
    ("Pi", 1 << 50, true),
    ("Ei", 1 << 60, true),
    ("k", 1_000, false),
    ("M", 1_000_000, false),
    ("G", 1_000_000_000, false),
    ("T", 1_000_000_000_000, false),
    ("P", 1_000_000_000_000_000, false),
    ("E", 1_000_000_000_000_000_000, false),
];

impl Quantity {
    pub const ZERO: Quantity = Quantity(0);

    pub fn parse(s: &str) -> Option<Quantity> {
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        let (neg, body) = match s.as_bytes()[0] {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let num_end = body.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(body.len());
        let (num, suffix) = body.split_at(num_end);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return None;
        }
        let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
        // value = int.frac * 10^exp10 * mult, in thousandths
        let mut mantissa: i128 = 0;
        for c in int_part.chars().chain(frac_part.chars()) {
            mantissa = mantissa.checked_mul(10)?.checked_add((c as u8 - b'0') as i128)?;
        }
        let mut exp10: i32 = -(frac_part.len() as i32) + 3; // thousandths
        let mut mult: i128 = 1;
        match suffix {
            "" => {}
            "m" => exp10 -= 3,
            "n" => exp10 -= 9,
            "u" => exp10 -= 6,
            s if s.starts_with('e') || s.starts_with('E') => {
                exp10 += s[1..].parse::<i32>().ok()?;
            }
            s => {
                let (_, m, _) = SUFFIXES.iter().find(|(name, _, _)| *name == s)?;
                mult = *m;
            }
        }
        let mut v = mantissa.checked_mul(mult)?;
        if exp10 >= 0 {
            v = v.checked_mul(10i128.checked_pow(exp10 as u32)?)?;
        } else {
            let d = 10i128.checked_pow((-exp10) as u32)?;
            // Round up like upstream does for sub-milli precision.
            v = (v + d - 1) / d;
        }
        Some(Quantity(if neg { -v } else { v }))
    }

    /// Parses a JSON quantity (string or number).
    pub fn from_value(v: &Value) -> Option<Quantity> {
        match v {
            Value::String(s) => Self::parse(s),
            Value::Number(n) => Self::parse(&n.to_string()),
            _ => None,
        }
    }

    pub fn millis(self) -> i128 {
        self.0
    }

    /// Whole units, rounded up.
    pub fn units_ceil(self) -> i128 {
        (self.0 + 999).div_euclid(1000)
    }

    /// Canonical-ish rendering: milli-units for fractions, binary suffixes for
    /// byte-like whole amounts, decimal otherwise.
    pub fn render(self, bytes_like: bool) -> String {
        let v = self.0;
        if v % 1000 != 0 {
            return format!("{v}m");
        }
        let units = v / 1000;
        if bytes_like && units != 0 {
            for (name, m, binary) in SUFFIXES.iter().rev() {
                if *binary && units % m == 0 {
                    return format!("{}{name}", units / m);
                }
            }
        }
        units.to_string()
    }
}

impl std::ops::Add for Quantity {
    type Output = Quantity;
    fn add(self, o: Quantity) -> Quantity {
        Quantity(self.0 + o.0)
    }
}

impl std::ops::Sub for Quantity {
    type Output = Quantity;
    fn sub(self, o: Quantity) -> Quantity {
        Quantity(self.0 - o.0)
    }
}

impl std::iter::Sum for Quantity {
    fn sum<I: Iterator<Item = Quantity>>(it: I) -> Quantity {
        Quantity(it.map(|q| q.0).sum())
    }
}

/// Whether a resource name is measured in bytes (for rendering).
pub fn is_bytes(resource: &str) -> bool {
    resource.contains("memory") || resource.contains("storage")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_kubernetes_accepts() {
        assert_eq!(Quantity::parse("100m"), Some(Quantity(100)));
        assert_eq!(Quantity::parse("1"), Some(Quantity(1000)));
        assert_eq!(Quantity::parse("1.5"), Some(Quantity(1500)));
        assert_eq!(Quantity::parse("128Mi"), Some(Quantity(128 * 1024 * 1024 * 1000)));
        assert_eq!(Quantity::parse("1e3"), Some(Quantity(1_000_000)));
        assert_eq!(Quantity::parse("10G"), Some(Quantity(10_000_000_000_000)));
        assert_eq!(Quantity::parse("0.5Gi"), Some(Quantity(512 * 1024 * 1024 * 1000)));
        assert_eq!(Quantity::parse("abc"), None);
        assert_eq!(Quantity::parse("1Zi"), None);
        assert_eq!(Quantity::parse(""), None);
    }

    #[test]
    fn renders_readably() {
        assert_eq!(Quantity::parse("250m").unwrap().render(false), "250m");
        assert_eq!(Quantity::parse("2").unwrap().render(false), "2");
        assert_eq!(Quantity::parse("256Mi").unwrap().render(true), "256Mi");
        assert_eq!(Quantity::parse("1Gi").unwrap().render(true), "1Gi");
        assert_eq!(Quantity::parse("1000").unwrap().render(true), "1000");
    }
}
