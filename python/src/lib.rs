//! The `evqueue._evqueue` extension module: Python bindings for the
//! evqueue core. The `evqueue` package re-exports everything public.

mod args;
mod callbacks;
mod errors;
mod event;
mod forward;
mod gil;
mod process;
mod queue;
#[cfg(target_os = "linux")]
mod shared;
mod stats;
mod subscriber;

use pyo3::prelude::*;

#[pymodule]
fn _evqueue(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<queue::EventQueue>()?;
    m.add_class::<event::Event>()?;
    m.add_class::<subscriber::Subscriber>()?;
    m.add_class::<stats::Stats>()?;
    m.add_class::<stats::ShutdownReport>()?;
    m.add_class::<forward::RedisForwarder>()?;
    #[cfg(target_os = "linux")]
    {
        m.add_class::<shared::SharedQueue>()?;
        m.add_class::<shared::SharedStats>()?;
        m.add_class::<shared::SharedSubscriber>()?;
    }
    m.add("EvqueueError", py.get_type::<errors::EvqueueError>())?;
    m.add("InvalidEvent", py.get_type::<errors::InvalidEvent>())?;
    m.add("EventTooLarge", py.get_type::<errors::EventTooLarge>())?;
    m.add("QueueFull", py.get_type::<errors::QueueFull>())?;
    m.add("QueueClosed", py.get_type::<errors::QueueClosed>())?;
    m.add_function(wrap_pyfunction!(event::now, m)?)?;
    m.add_function(wrap_pyfunction!(process::_close_all, m)?)?;
    m.add_function(wrap_pyfunction!(process::_after_fork_in_child, m)?)?;
    m.add("MAX_NAME_LEN", evqueue::MAX_NAME_LEN)?;
    Ok(())
}
