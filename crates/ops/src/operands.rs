//! [`Shapes`] and [`Operands`]: an op's inputs read by position.
//!
//! Most callers hold their inputs in a slice or an array, and both traits are implemented for
//! those. An op with any number of inputs (`concat`, `stack`) is also run on a list its caller
//! keeps elsewhere: the tape reads each input from its own nodes through these traits, so that
//! recording one builds no list of shapes or arrays (and allocates nothing).

use std::marker::PhantomData;

use crate::{Float, Shape, TensorRef};

/// The shapes of an op's inputs, by position.
pub trait Shapes<'s> {
    /// How many inputs there are.
    fn count(&self) -> usize;
    /// Input `k`'s shape; `k` must be below [`count`](Shapes::count).
    fn shape(&self, k: usize) -> &'s Shape;
}

/// The values of an op's inputs, by position.
pub trait Operands<'a, E> {
    /// How many inputs there are.
    fn count(&self) -> usize;
    /// Input `k`; `k` must be below [`count`](Operands::count).
    fn get(&self, k: usize) -> TensorRef<'a, E>;
}

impl<'s> Shapes<'s> for [&'s Shape] {
    #[inline]
    fn count(&self) -> usize {
        self.len()
    }
    #[inline]
    fn shape(&self, k: usize) -> &'s Shape {
        self[k]
    }
}

impl<'s, const N: usize> Shapes<'s> for [&'s Shape; N] {
    #[inline]
    fn count(&self) -> usize {
        N
    }
    #[inline]
    fn shape(&self, k: usize) -> &'s Shape {
        self[k]
    }
}

impl<'s> Shapes<'s> for Vec<&'s Shape> {
    #[inline]
    fn count(&self) -> usize {
        self.len()
    }
    #[inline]
    fn shape(&self, k: usize) -> &'s Shape {
        self[k]
    }
}

impl<'a, E: Float> Operands<'a, E> for [TensorRef<'a, E>] {
    #[inline]
    fn count(&self) -> usize {
        self.len()
    }
    #[inline]
    fn get(&self, k: usize) -> TensorRef<'a, E> {
        self[k]
    }
}

impl<'a, E: Float, const N: usize> Operands<'a, E> for [TensorRef<'a, E>; N] {
    #[inline]
    fn count(&self) -> usize {
        N
    }
    #[inline]
    fn get(&self, k: usize) -> TensorRef<'a, E> {
        self[k]
    }
}

impl<'a, E: Float> Operands<'a, E> for Vec<TensorRef<'a, E>> {
    #[inline]
    fn count(&self) -> usize {
        self.len()
    }
    #[inline]
    fn get(&self, k: usize) -> TensorRef<'a, E> {
        self[k]
    }
}

/// The shapes of some [`Operands`].
pub(crate) struct ShapesOf<'o, E, O: ?Sized> {
    operands: &'o O,
    element: PhantomData<E>,
}

impl<'o, E, O: ?Sized> ShapesOf<'o, E, O> {
    pub(crate) fn new(operands: &'o O) -> Self {
        ShapesOf {
            operands,
            element: PhantomData,
        }
    }
}

impl<'a, E: Float, O: Operands<'a, E> + ?Sized> Shapes<'a> for ShapesOf<'_, E, O> {
    #[inline]
    fn count(&self) -> usize {
        self.operands.count()
    }
    #[inline]
    fn shape(&self, k: usize) -> &'a Shape {
        self.operands.get(k).shape()
    }
}
