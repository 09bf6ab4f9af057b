//! [`InlineQueue`]: a first-in, first-out queue that keeps its first item inline.
//!
//! A stream's two queues — events the decoder read, then events waiting to be handed to the
//! caller — hold one event almost always (and a call's observations, drained after every
//! poll, are one at a time almost always). Kept inline, that event lives in the call's own
//! cache lines; a `VecDeque` would put it in a heap buffer of its own, one more cache miss per
//! streamed chunk when a thousand streams take turns. More items spill to a `VecDeque`.

use std::collections::VecDeque;

/// A FIFO queue: the first item inline, the rest in a `VecDeque`.
#[derive(Debug)]
pub(crate) struct InlineQueue<T> {
    /// The oldest item, when the queue holds it inline. Invariant: `head` is `None` only when
    /// the queue is empty or was last popped from `head` (then `rest` holds what follows).
    head: Option<T>,
    rest: VecDeque<T>,
}

impl<T> Default for InlineQueue<T> {
    fn default() -> Self {
        InlineQueue::new()
    }
}

impl<T> InlineQueue<T> {
    pub(crate) const fn new() -> Self {
        InlineQueue {
            head: None,
            rest: VecDeque::new(),
        }
    }

    #[inline]
    pub(crate) fn push_back(&mut self, item: T) {
        // Inline only when nothing older waits in `rest`: the order stays first-in, first-out.
        if self.head.is_none() && self.rest.is_empty() {
            self.head = Some(item);
        } else {
            self.rest.push_back(item);
        }
    }

    #[inline]
    pub(crate) fn pop_front(&mut self) -> Option<T> {
        match self.head.take() {
            Some(item) => Some(item),
            None => self.rest.pop_front(),
        }
    }

    #[inline]
    pub(crate) fn front(&self) -> Option<&T> {
        self.head.as_ref().or_else(|| self.rest.front())
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_none() && self.rest.is_empty()
    }

    /// The items, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.head.iter().chain(self.rest.iter())
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        usize::from(self.head.is_some()) + self.rest.len()
    }

    pub(crate) fn clear(&mut self) {
        self.head = None;
        self.rest.clear();
    }

    /// Takes every item, oldest first.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.head.take().into_iter().chain(self.rest.drain(..))
    }
}

#[cfg(test)]
mod tests {
    use super::InlineQueue;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    #[derive(Debug, Clone)]
    enum Op {
        Push(u8),
        Pop,
        Clear,
        Drain,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => any::<u8>().prop_map(Op::Push),
            3 => Just(Op::Pop),
            1 => Just(Op::Clear),
            1 => Just(Op::Drain),
        ]
    }

    proptest! {
        /// Whatever the operations, the queue answers as a `VecDeque` does.
        #[test]
        fn behaves_as_a_vecdeque(ops in proptest::collection::vec(op(), 0..64)) {
            let mut q = InlineQueue::new();
            let mut model = VecDeque::new();
            for op in ops {
                match op {
                    Op::Push(v) => {
                        q.push_back(v);
                        model.push_back(v);
                    }
                    Op::Pop => prop_assert_eq!(q.pop_front(), model.pop_front()),
                    Op::Clear => {
                        q.clear();
                        model.clear();
                    }
                    Op::Drain => {
                        let got: Vec<u8> = q.drain().collect();
                        let want: Vec<u8> = model.drain(..).collect();
                        prop_assert_eq!(got, want);
                    }
                }
                prop_assert_eq!(q.front(), model.front());
                prop_assert_eq!(q.is_empty(), model.is_empty());
                prop_assert_eq!(q.len(), model.len());
                prop_assert!(q.iter().eq(model.iter()));
            }
        }
    }

    #[test]
    fn one_item_stays_inline() {
        let mut q = InlineQueue::new();
        q.push_back(1);
        assert!(q.rest.is_empty() && q.rest.capacity() == 0);
        q.push_back(2);
        assert_eq!(q.pop_front(), Some(1));
        // `2` waits in `rest`: a new item goes behind it, not inline ahead of it.
        q.push_back(3);
        assert_eq!(q.pop_front(), Some(2));
        assert_eq!(q.pop_front(), Some(3));
        assert_eq!(q.pop_front(), None);
    }
}
