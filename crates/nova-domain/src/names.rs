//! Backstage's naming rules for entity names, namespaces, kinds, labels, annotations and tags.
//!
//! Each check returns `Err(rule)` with a sentence naming the rule that failed, so callers can
//! report "field: rule" without re-deriving the message.

/// Maximum length of a name, namespace, kind, label name part, or tag.
pub const MAX_NAME_LEN: usize = 63;
/// Maximum length of a DNS subdomain prefix on label and annotation keys.
pub const MAX_PREFIX_LEN: usize = 253;

fn is_alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// `^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`, 1 to 63 characters: metadata.name, label values
/// and the name part of label/annotation keys.
pub fn check_object_name(s: &str) -> Result<(), &'static str> {
    if s.is_empty() || s.len() > MAX_NAME_LEN {
        return Err("must be 1 to 63 characters long");
    }
    let first = s.chars().next().unwrap_or('-');
    let last = s.chars().last().unwrap_or('-');
    if !is_alnum(first) || !is_alnum(last) {
        return Err("must start and end with a letter or digit");
    }
    if !s.chars().all(|c| is_alnum(c) || matches!(c, '-' | '_' | '.')) {
        return Err("may contain only letters, digits, '-', '_' and '.'");
    }
    Ok(())
}

/// A DNS label: 1 to 63 lowercase letters, digits and inner dashes (metadata.namespace).
pub fn check_dns_label(s: &str) -> Result<(), &'static str> {
    if s.is_empty() || s.len() > MAX_NAME_LEN {
        return Err("must be 1 to 63 characters long");
    }
    if !s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        return Err("may contain only lowercase letters, digits and '-'");
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err("must start and end with a letter or digit");
    }
    Ok(())
}

/// A DNS subdomain: dot-separated DNS labels, at most 253 characters.
pub fn check_dns_subdomain(s: &str) -> Result<(), &'static str> {
    if s.is_empty() || s.len() > MAX_PREFIX_LEN {
        return Err("prefix must be 1 to 253 characters long");
    }
    for label in s.split('.') {
        check_dns_label(label).map_err(|_| "prefix must be a DNS subdomain (lowercase labels separated by '.')")?;
    }
    Ok(())
}

/// A kind: `^[a-zA-Z][a-z0-9A-Z]*$`, 1 to 63 characters.
pub fn check_kind(s: &str) -> Result<(), &'static str> {
    if s.is_empty() || s.len() > MAX_NAME_LEN {
        return Err("must be 1 to 63 characters long");
    }
    let mut chars = s.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_alphabetic()) || !chars.all(is_alnum) {
        return Err("must be a letter followed by letters and digits");
    }
    Ok(())
}

/// A label or annotation key: `[prefix/]name`, prefix a DNS subdomain, name an object name.
pub fn check_key(s: &str) -> Result<(), &'static str> {
    match s.split_once('/') {
        Some((prefix, name)) => {
            check_dns_subdomain(prefix)?;
            if name.contains('/') {
                return Err("may contain at most one '/'");
            }
            check_object_name(name)
        }
        None => check_object_name(s),
    }
}

/// A label value: empty, or an object name.
pub fn check_label_value(s: &str) -> Result<(), &'static str> {
    if s.is_empty() { Ok(()) } else { check_object_name(s) }
}

/// A tag: `^[a-z0-9:+#]+(-[a-z0-9:+#]+)*$`, 1 to 63 characters.
pub fn check_tag(s: &str) -> Result<(), &'static str> {
    if s.is_empty() || s.len() > MAX_NAME_LEN {
        return Err("must be 1 to 63 characters long");
    }
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, ':' | '+' | '#');
    if !s.split('-').all(|part| !part.is_empty() && part.chars().all(ok_char)) {
        return Err("must be lowercase letters, digits, ':', '+' or '#', in parts joined by single '-'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names() {
        for ok in ["a", "payment-service", "a.b_c-d", "A1", &"x".repeat(63)] {
            assert!(check_object_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "a b", "a/b", &"x".repeat(64), "é"] {
            assert!(check_object_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_and_tags() {
        assert!(check_key("backstage.io/source-location").is_ok());
        assert!(check_key("amazon.com/ecr-repository-arn").is_ok());
        assert!(check_key("Example.com/x").is_err());
        assert!(check_key("a/b/c").is_err());
        assert!(check_tag("java").is_ok());
        assert!(check_tag("c++").is_ok());
        assert!(check_tag("Java").is_err());
        assert!(check_tag("a--b").is_err());
        assert!(check_dns_label("default").is_ok());
        assert!(check_dns_label("Default").is_err());
        assert!(check_kind("Component").is_ok());
        assert!(check_kind("1x").is_err());
    }
}
