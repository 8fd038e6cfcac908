//! The brokers of the DMP services on this shard thread: the wiring handlers and the
//! direct connections of one server find the same broker by its service's id.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use crate::broker::{Broker, Refusal};
use crate::config::DmpConfig;

thread_local! {
    static BROKERS: RefCell<HashMap<u64, Rc<RefCell<Broker>>>> = RefCell::new(HashMap::new());
}

/// The broker of service `id` on this thread, made from `config` on first use.
pub(crate) fn broker(id: u64, config: &Arc<DmpConfig>) -> Result<Rc<RefCell<Broker>>, Refusal> {
    BROKERS.with(|b| {
        if let Some(broker) = b.borrow().get(&id) {
            return Ok(Rc::clone(broker));
        }
        let broker = Broker::new(Arc::clone(config)).map_err(|r| {
            Refusal::new(
                hawser_wire::dmp::ResponseCode::InternalError,
                format!("the server's DMP configuration does not hold: {r}"),
            )
        })?;
        let broker = Rc::new(RefCell::new(broker));
        b.borrow_mut().insert(id, Rc::clone(&broker));
        Ok(broker)
    })
}

/// The broker of service `id` on this thread, if it was made.
pub(crate) fn existing(id: u64) -> Option<Rc<RefCell<Broker>>> {
    BROKERS.with(|b| b.borrow().get(&id).cloned())
}
