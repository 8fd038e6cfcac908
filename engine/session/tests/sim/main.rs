//! The session simulator: endpoints over a simulated network in virtual time. No
//! sockets, no threads, no sleeps: [`net`] is the network, [`seeded`] runs thousands of
//! seeded histories over a faulty one checking the exactly-once invariants, and
//! [`scenarios`] walks through targeted cases on a reliable one.

mod net;
mod scenarios;
mod seeded;
mod tls;
