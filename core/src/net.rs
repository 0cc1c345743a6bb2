//! What an application sees of its node during an upcall ([`Net`]), and the view of a node
//! whose messages wrap the application's ([`Narrow`]), so that an application such as PAST
//! can run inside a larger one that also has messages of its own.

use crate::config::Config;
use crate::id::Id;
use crate::overlay::Overlay;
use crate::route::RoutingState;
use crate::time::Time;

/// The node as an application sees it: its id, configuration, tables, the time of the
/// input being handled, randomness, and routing and sending messages of type `M`.
pub trait Net<M> {
    /// This node's id.
    fn id(&self) -> Id;
    /// The node's configuration.
    fn config(&self) -> &Config;
    /// The leaf set, routing table and neighborhood set.
    fn state(&self) -> &RoutingState;
    /// The time of the input being handled.
    fn now(&self) -> Time;
    /// A random number from the node's seeded generator.
    fn random(&mut self) -> u64;
    /// Routes a message towards the node numerically closest to `key`.
    fn route(&mut self, key: Id, message: M);
    /// Routes a message again after earlier attempts went unanswered: with `attempt` 1 and
    /// up, every node on the way picks its next hop at random among those that make
    /// progress ([`Overlay::route_attempt`]).
    fn route_attempt(&mut self, key: Id, message: M, attempt: u8);
    /// Sends a message straight to `to`.
    fn send(&mut self, to: Id, message: M);
}

impl<M> Net<M> for Overlay<M> {
    fn id(&self) -> Id {
        Overlay::id(self)
    }
    fn config(&self) -> &Config {
        Overlay::config(self)
    }
    fn state(&self) -> &RoutingState {
        Overlay::state(self)
    }
    fn now(&self) -> Time {
        Overlay::now(self)
    }
    fn random(&mut self) -> u64 {
        Overlay::random(self)
    }
    fn route(&mut self, key: Id, message: M) {
        Overlay::route(self, key, message);
    }
    fn route_attempt(&mut self, key: Id, message: M, attempt: u8) {
        Overlay::route_attempt(self, key, message, attempt);
    }
    fn send(&mut self, to: Id, message: M) {
        Overlay::send(self, to, message);
    }
}

/// A node whose messages `M` wrap an application's messages `N`, seen by that application:
/// what it routes and sends is wrapped with `M::from`.
pub struct Narrow<'a, M>(pub &'a mut dyn Net<M>);

impl<M, N> Net<N> for Narrow<'_, M>
where
    M: From<N>,
{
    fn id(&self) -> Id {
        self.0.id()
    }
    fn config(&self) -> &Config {
        self.0.config()
    }
    fn state(&self) -> &RoutingState {
        self.0.state()
    }
    fn now(&self) -> Time {
        self.0.now()
    }
    fn random(&mut self) -> u64 {
        self.0.random()
    }
    fn route(&mut self, key: Id, message: N) {
        self.0.route(key, M::from(message));
    }
    fn route_attempt(&mut self, key: Id, message: N, attempt: u8) {
        self.0.route_attempt(key, M::from(message), attempt);
    }
    fn send(&mut self, to: Id, message: N) {
        self.0.send(to, M::from(message));
    }
}
