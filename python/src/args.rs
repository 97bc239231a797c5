//! Argument checks shared by the methods: properties, timeouts, timestamps.
//! Wrong types raise `TypeError`, wrong values `ValueError`, before anything
//! changes.

use evqueue::Overflow;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyString};
use std::time::Duration;

/// A property dict borrowed as `(&str, &str)` pairs; the `Bound` strings keep
/// the UTF-8 buffers alive.
pub(crate) struct Props<'py> {
    strings: Vec<(Bound<'py, PyString>, Bound<'py, PyString>)>,
}

impl<'py> Props<'py> {
    /// Reads `props`: a dict of str to str, or None.
    pub(crate) fn from_arg(props: Option<&Bound<'py, PyAny>>) -> PyResult<Self> {
        let Some(props) = props.filter(|p| !p.is_none()) else {
            return Ok(Props {
                strings: Vec::new(),
            });
        };
        let dict = props.cast::<PyDict>().map_err(|_| {
            PyTypeError::new_err(format!(
                "properties must be a dict of str to str or None, not {}",
                type_name(props)
            ))
        })?;
        let mut strings = Vec::with_capacity(dict.len());
        for (k, v) in dict.iter() {
            let key = k.cast_into::<PyString>().map_err(|e| {
                PyTypeError::new_err(format!(
                    "property keys must be str, not {}",
                    type_name(e.into_inner().as_any())
                ))
            })?;
            let value = v.cast_into::<PyString>().map_err(|e| {
                PyTypeError::new_err(format!(
                    "property values must be str, not {} (key {:?})",
                    type_name(e.into_inner().as_any()),
                    key.to_string()
                ))
            })?;
            strings.push((key, value));
        }
        Ok(Props { strings })
    }

    /// The pairs as `&str`; fails with `UnicodeEncodeError` for a lone
    /// surrogate.
    pub(crate) fn pairs(&self) -> PyResult<Vec<(&str, &str)>> {
        self.strings
            .iter()
            .map(|(k, v)| Ok((k.to_str()?, v.to_str()?)))
            .collect()
    }
}

/// A dict of str to str, copied (for `Event(...)`).
pub(crate) fn owned_props(dict: &Bound<'_, PyDict>) -> PyResult<Vec<(String, String)>> {
    let props = Props::from_arg(Some(dict.as_any()))?;
    Ok(props
        .pairs()?
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

/// The name of `obj`'s type, for messages.
pub(crate) fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |n| n.to_string())
}

/// A `str` argument (not bytes, not None).
pub(crate) fn str_arg<'a, 'py>(
    obj: &'a Bound<'py, PyAny>,
    what: &str,
) -> PyResult<&'a Bound<'py, PyString>> {
    obj.cast::<PyString>()
        .map_err(|_| PyTypeError::new_err(format!("{what} must be str, not {}", type_name(obj))))
}

/// A timeout in seconds: None (no deadline), an int or a float >= 0.
pub(crate) fn timeout(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Duration>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(None);
    };
    if obj.is_instance_of::<PyBool>()
        || !(obj.is_instance_of::<PyInt>() || obj.is_instance_of::<PyFloat>())
    {
        return Err(PyTypeError::new_err(format!(
            "timeout must be a number of seconds or None, not {}",
            type_name(obj)
        )));
    }
    let seconds: f64 = obj.extract()?;
    if seconds.is_nan() || seconds < 0.0 {
        return Err(PyValueError::new_err(format!(
            "timeout must be >= 0 seconds or None, not {seconds}"
        )));
    }
    Ok(Some(
        Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX),
    ))
}

/// An unsigned int argument (bool refused); `ValueError` below zero.
pub(crate) fn uint(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<u64> {
    if obj.is_instance_of::<PyBool>() || !obj.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err(format!(
            "{what} must be an int, not {}",
            type_name(obj)
        )));
    }
    let value: i128 = obj
        .extract()
        .map_err(|_| PyValueError::new_err(format!("{what} is out of range")))?;
    u64::try_from(value).map_err(|_| {
        PyValueError::new_err(format!("{what} must be between 0 and 2**64-1, not {value}"))
    })
}

/// A bool argument (only True or False).
pub(crate) fn bool_arg(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<bool> {
    obj.cast::<PyBool>()
        .map(|b| b.is_true())
        .map_err(|_| PyTypeError::new_err(format!("{what} must be a bool, not {}", type_name(obj))))
}

/// An event's optional `timestamp` argument: ns since the Unix epoch;
/// None or absent is 0 (stamped at push).
pub(crate) fn timestamp_arg(obj: Option<&Bound<'_, PyAny>>) -> PyResult<u64> {
    match obj {
        Some(t) if !t.is_none() => uint(t, "timestamp"),
        _ => Ok(0),
    }
}

/// An event's optional `external` argument, `default` when absent.
pub(crate) fn external_arg(obj: Option<&Bound<'_, PyAny>>, default: bool) -> PyResult<bool> {
    obj.map_or(Ok(default), |e| bool_arg(e, "external"))
}

/// An ordering key argument: None (no key), str (its UTF-8 bytes) or bytes.
pub(crate) fn key_arg<'a>(key: Option<&'a Bound<'_, PyAny>>) -> PyResult<Option<&'a [u8]>> {
    match key {
        None => Ok(None),
        Some(k) if k.is_none() => Ok(None),
        Some(k) => {
            if let Ok(b) = k.cast::<PyBytes>() {
                Ok(Some(b.as_bytes()))
            } else if let Ok(s) = k.cast::<PyString>() {
                Ok(Some(s.to_str()?.as_bytes()))
            } else {
                Err(PyTypeError::new_err(format!(
                    "key must be str, bytes or None, not {}",
                    type_name(k)
                )))
            }
        }
    }
}

pub(crate) fn parse_overflow(overflow: &Bound<'_, PyAny>) -> PyResult<Overflow> {
    match str_arg(overflow, "overflow")?.to_str()? {
        "overwrite" => Ok(Overflow::Overwrite),
        "reject" => Ok(Overflow::Reject),
        other => Err(PyValueError::new_err(format!(
            "overflow must be \"overwrite\" or \"reject\", not {other:?}"
        ))),
    }
}

/// `"headroom"`, `"oldest"` or `"newest"`: where a lapped reader continues.
pub(crate) fn parse_lag(lag: &Bound<'_, PyAny>) -> PyResult<evqueue::Lag> {
    match str_arg(lag, "lag")?.to_str()? {
        "headroom" => Ok(evqueue::Lag::Headroom),
        "oldest" => Ok(evqueue::Lag::Oldest),
        "newest" => Ok(evqueue::Lag::Newest),
        other => Err(PyValueError::new_err(format!(
            "lag must be \"headroom\", \"oldest\" or \"newest\", not {other:?}"
        ))),
    }
}

pub(crate) fn count_arg(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<usize> {
    let n = uint(obj, what)?;
    usize::try_from(n).map_err(|_| PyValueError::new_err(format!("{what} {n} is too large")))
}
