//! PostgreSQL's text form of a value, as COPY's text and CSV formats and
//! INSERT's string literals carry it: plain text, or a one-dimensional array
//! literal `{a,"b c",NULL}` for a list column (`change_ids`).

use arrow::datatypes::DataType;

use crate::event::RawValue;

/// The value of a column of type `ty` given as text: an array literal for a
/// list column becomes a [`RawValue::List`]; anything else stays text (so a
/// `;`-separated `change_ids`, the CSV file convention, still works).
pub fn text_value(ty: &DataType, text: String) -> Result<RawValue, String> {
    if matches!(ty, DataType::List(_) | DataType::LargeList(_))
        && text.trim_start_matches(is_array_space).starts_with('{')
    {
        return array_literal(&text).map(RawValue::List);
    }
    Ok(RawValue::Text(text))
}

/// Whitespace as `array_in` skips it.
fn is_array_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// Parses a one-dimensional array literal of text as PostgreSQL's `array_in`
/// does: elements separated by commas, optionally double-quoted; a backslash
/// takes the next character literally (quoted or not); whitespace around an
/// unquoted element is dropped; an unquoted `NULL` (any case) is null.
pub fn array_literal(literal: &str) -> Result<Vec<RawValue>, String> {
    let bad = |why: &str| format!("malformed array literal '{literal}': {why}");
    let body = literal.trim_start_matches(is_array_space);
    let Some(body) = body.strip_prefix('{') else {
        return Err(bad(if body.starts_with('[') {
            "explicit array dimensions are not supported"
        } else {
            "an array literal starts with '{'"
        }));
    };
    let mut chars = body.chars().peekable();
    let mut items = Vec::new();
    let skip_space = |chars: &mut std::iter::Peekable<std::str::Chars>| {
        while chars.next_if(|c| is_array_space(*c)).is_some() {}
    };
    skip_space(&mut chars);
    if chars.next_if_eq(&'}').is_none() {
        loop {
            skip_space(&mut chars);
            let mut value = String::new();
            let item = if chars.next_if_eq(&'"').is_some() {
                loop {
                    match chars.next() {
                        None => return Err(bad("a quoted element is not closed")),
                        Some('"') => break,
                        Some('\\') => value.push(chars.next().ok_or_else(|| bad("it ends after a backslash"))?),
                        Some(c) => value.push(c),
                    }
                }
                RawValue::Text(value)
            } else {
                // Trailing whitespace is dropped unless escaped: `kept` is the
                // length up to the last character that counts.
                let (mut kept, mut escaped) = (0, false);
                loop {
                    match chars.peek().copied() {
                        None => return Err(bad("no closing '}'")),
                        Some(',' | '}') => break,
                        Some('"') => return Err(bad("unexpected '\"' inside an unquoted element")),
                        Some('{') => return Err(bad("multi-dimensional arrays are not supported")),
                        Some('\\') => {
                            chars.next();
                            value.push(chars.next().ok_or_else(|| bad("it ends after a backslash"))?);
                            kept = value.len();
                            escaped = true;
                        }
                        Some(c) => {
                            chars.next();
                            value.push(c);
                            if !is_array_space(c) {
                                kept = value.len();
                            }
                        }
                    }
                }
                value.truncate(kept);
                if value.is_empty() && !escaped {
                    return Err(bad("an element is empty (quote it: \"\")"));
                }
                if !escaped && value.eq_ignore_ascii_case("null") { RawValue::Null } else { RawValue::Text(value) }
            };
            items.push(item);
            skip_space(&mut chars);
            match chars.next() {
                Some(',') => continue,
                Some('}') => break,
                Some(c) => return Err(bad(&format!("unexpected '{c}' after an element"))),
                None => return Err(bad("no closing '}'")),
            }
        }
    }
    if chars.any(|c| !is_array_space(c)) {
        return Err(bad("junk after the closing '}'"));
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> RawValue {
        RawValue::Text(s.into())
    }

    #[test]
    fn array_literals_as_array_in_reads_them() {
        assert_eq!(array_literal("{}").unwrap(), vec![]);
        assert_eq!(array_literal("  { }  ").unwrap(), vec![]);
        assert_eq!(array_literal("{a,b}").unwrap(), vec![t("a"), t("b")]);
        assert_eq!(array_literal("{ a b , c }").unwrap(), vec![t("a b"), t("c")]);
        assert_eq!(
            array_literal(r#"{"c d","",NULL,null,"NULL"}"#).unwrap(),
            vec![t("c d"), t(""), RawValue::Null, RawValue::Null, t("NULL")]
        );
        assert_eq!(array_literal(r#"{"a\"b\\c",x\,y,\ z\ }"#).unwrap(), vec![t("a\"b\\c"), t("x,y"), t(" z ")]);
        assert_eq!(array_literal("{é,\u{1F680}}").unwrap(), vec![t("é"), t("\u{1F680}")]);
        for bad in ["", "a,b", "{a", "{a,,b}", "{a,}", "{\"a}", "{a\"b\"}", "{{a}}", "{a} x", "[1:2]={a,b}", "{a\\"] {
            assert!(array_literal(bad).unwrap_err().starts_with("malformed array literal"), "{bad}");
        }
    }

    #[test]
    fn text_values_of_list_columns_are_arrays() {
        let list = DataType::List(crate::event::change_ids_item());
        assert_eq!(text_value(&list, "{a,b}".into()).unwrap(), RawValue::List(vec![t("a"), t("b")]));
        assert_eq!(text_value(&list, "a;b".into()).unwrap(), t("a;b"));
        assert!(text_value(&list, "{a".into()).is_err());
        assert_eq!(text_value(&DataType::Utf8, "{a}".into()).unwrap(), t("{a}"));
    }
}
