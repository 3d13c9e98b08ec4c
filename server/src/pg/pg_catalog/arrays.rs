//! PostgreSQL's text form of a one-dimensional array, `{r,p,"a b",NULL}`:
//! what `'{r,p}'::text[]` and an untyped array parameter (pgcli's
//! `relkind = ANY($1)` with `'{r,p,f}'`) hold.

use crate::pg::errors::PgError;

/// The elements of an array literal; `None` for an unquoted `NULL`.
pub fn parse_array(text: &str) -> Result<Vec<Option<String>>, PgError> {
    let malformed = |why: &str| PgError::with_hint("22P02", format!("malformed array literal: \"{text}\""), why);
    let body = text.trim();
    let Some(inner) = body.strip_prefix('{').and_then(|b| b.strip_suffix('}')) else {
        return Err(malformed("Array value must start with \"{\" and end with \"}\"."));
    };
    let mut out = Vec::new();
    if inner.trim().is_empty() {
        return Ok(out);
    }
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut element = String::new();
        let mut quoted = false;
        if chars.peek() == Some(&'"') {
            chars.next();
            quoted = true;
            loop {
                match chars.next() {
                    Some('\\') => element.extend(chars.next()),
                    Some('"') => break,
                    Some(c) => element.push(c),
                    None => return Err(malformed("Unexpected end of input.")),
                }
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
        } else {
            while let Some(&c) = chars.peek() {
                match c {
                    ',' => break,
                    '{' | '}' | '"' => return Err(malformed("Nested arrays are not supported here.")),
                    '\\' => {
                        chars.next();
                        element.extend(chars.next());
                    }
                    c => {
                        element.push(c);
                        chars.next();
                    }
                }
            }
            element = element.trim_end().to_string();
            if element.is_empty() {
                return Err(malformed("Unexpected \",\" character."));
            }
        }
        out.push(if !quoted && element.eq_ignore_ascii_case("null") { None } else { Some(element) });
        match chars.next() {
            Some(',') => {}
            None => return Ok(out),
            Some(_) => return Err(malformed("Junk after closing double quote.")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_literals_split_into_elements() -> Result<(), PgError> {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(parse_array("{r,p}")?, [s("r"), s("p")]);
        assert_eq!(
            parse_array(" { a , \"b c\" ,NULL, \"NULL\", x\\,y } ")?,
            [s("a"), s("b c"), None, s("NULL"), s("x,y")]
        );
        assert_eq!(parse_array("{}")?, []);
        assert_eq!(parse_array("{\"a\\\"b\"}")?, [s("a\"b")]);
        Ok(())
    }

    #[test]
    fn a_malformed_array_literal_is_22p02() {
        for bad in ["r,p", "{a,}", "{,a}", "{\"a\" b}", "{{1,2},{3,4}}", "{\"open}"] {
            match parse_array(bad) {
                Ok(v) => panic!("{bad}: {v:?}"),
                Err(e) => assert_eq!(e.parts().0, "22P02", "{bad}"),
            }
        }
    }
}
