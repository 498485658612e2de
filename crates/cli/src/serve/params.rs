//! Query parameters as the pages' forms send them (an empty field is an absent one) and as the API
//! documents them, with errors that name the parameter and say what was wrong.

use std::fmt::Display;
use std::str::FromStr;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use chrono::NaiveDate;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use super::api::ApiError;

/// `Query<T>` whose rejection is a 400 naming the bad parameter (axum's message, as JSON).
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| Query(q.0))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

/// A JSON body (`application/json`) or a form (`application/x-www-form-urlencoded`), so a page's
/// form and an API client post the same request; errors name the bad field.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let form = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if form {
            axum::Form::<T>::from_request(req, state)
                .await
                .map(|f| Body(f.0))
                .map_err(|e| ApiError::new(e.status(), e.body_text()))
        } else {
            axum::Json::<T>::from_request(req, state)
                .await
                .map(|j| Body(j.0))
                .map_err(|e| ApiError::new(e.status(), e.body_text()))
        }
    }
}

/// An optional text parameter; empty is absent.
pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()))
}

/// An optional parameter parsed by its `FromStr`; empty is absent.
pub fn parsed<'de, D: Deserializer<'de>, T: FromStr>(d: D) -> Result<Option<T>, D::Error>
where
    T::Err: Display,
{
    match text(d)? {
        None => Ok(None),
        Some(s) => s.parse::<T>().map(Some).map_err(|e| serde::de::Error::custom(format!("'{s}': {e}"))),
    }
}

/// An optional date, `YYYY-MM-DD`, between the years 1900 and 2200 (the calendar's range, with room;
/// a year like +262143 would make every range computation huge).
pub fn date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
    use chrono::Datelike;
    match text(d)? {
        None => Ok(None),
        Some(s) => match NaiveDate::parse_from_str(&s, "%Y-%m-%d") {
            Ok(date) if (1900..=2200).contains(&date.year()) => Ok(Some(date)),
            Ok(_) => Err(serde::de::Error::custom(format!("'{s}' is outside the years 1900 to 2200"))),
            Err(_) => Err(serde::de::Error::custom(format!("'{s}' is not a date (YYYY-MM-DD)"))),
        },
    }
}

/// A checkbox or a JSON boolean: `true`/`on`/`1` are true, absent or empty false.
pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Text(String),
    }
    match Option::<Flag>::deserialize(d)? {
        None => Ok(false),
        Some(Flag::Bool(b)) => Ok(b),
        Some(Flag::Text(s)) => match s.trim() {
            "" | "false" | "off" | "0" => Ok(false),
            "true" | "on" | "1" => Ok(true),
            other => Err(serde::de::Error::custom(format!("'{other}' is not true or false"))),
        },
    }
}
