//! The latency model: nodes at random points of a square, latency = Euclidean distance.
//!
//! This is the model of the Pastry paper's "Euclidean network" and of FreePastry's
//! simulator. A grid over the square finds the node nearest to a point quickly, which the
//! simulator uses to hand a joining node a nearby contact, as the paper assumes.

use core::time::Duration;

/// Side of the square in milliseconds of one-way latency.
pub const SIDE_MS: f64 = 100.0;

/// A point in the square, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// Horizontal position.
    pub x: f64,
    /// Vertical position.
    pub y: f64,
}

impl Point {
    /// One-way latency between two points.
    pub fn latency(self, other: Point) -> Duration {
        let (dx, dy) = (self.x - other.x, self.y - other.y);
        Duration::from_micros(((dx * dx + dy * dy).sqrt() * 1000.0) as u64)
    }

    fn distance2(self, other: Point) -> f64 {
        (self.x - other.x).powi(2) + (self.y - other.y).powi(2)
    }
}

/// Node positions with a grid index for nearest-node queries over the nodes "present".
#[derive(Debug, Default)]
pub struct Plane {
    points: Vec<Point>,
    cells: Vec<Vec<u32>>,
    cells_per_side: usize,
}

impl Plane {
    /// An empty plane sized for about `expected` nodes.
    pub fn new(expected: usize) -> Self {
        let cells_per_side = ((expected as f64).sqrt().ceil() as usize).max(1);
        Plane { points: Vec::new(), cells: vec![Vec::new(); cells_per_side * cells_per_side], cells_per_side }
    }

    /// Places node `points.len()` at `point`, not yet present for nearest queries.
    pub fn place(&mut self, point: Point) -> u32 {
        self.points.push(point);
        (self.points.len() - 1) as u32
    }

    /// The position of a node.
    pub fn point(&self, node: u32) -> Point {
        self.points[node as usize]
    }

    /// One-way latency between two nodes.
    pub fn latency(&self, a: u32, b: u32) -> Duration {
        self.point(a).latency(self.point(b))
    }

    fn cell(&self, point: Point) -> (usize, usize) {
        let n = self.cells_per_side;
        let f = |v: f64| ((v / SIDE_MS * n as f64) as usize).min(n - 1);
        (f(point.x), f(point.y))
    }

    /// Makes `node` findable by [`Plane::nearest`].
    pub fn add_present(&mut self, node: u32) {
        let (cx, cy) = self.cell(self.point(node));
        let n = self.cells_per_side;
        self.cells[cy * n + cx].push(node);
    }

    /// Makes `node` no longer findable.
    pub fn remove_present(&mut self, node: u32) {
        let (cx, cy) = self.cell(self.point(node));
        let n = self.cells_per_side;
        self.cells[cy * n + cx].retain(|&x| x != node);
    }

    /// The present node nearest to `point`, searching rings of cells outwards.
    pub fn nearest(&self, point: Point) -> Option<u32> {
        let n = self.cells_per_side as isize;
        let cell_size = SIDE_MS / n as f64;
        let (cx, cy) = self.cell(point);
        let (cx, cy) = (cx as isize, cy as isize);
        let mut best: Option<(f64, u32)> = None;
        for ring in 0..=n {
            // Every point of ring r+1 is at least r cells away.
            if let Some((d2, _)) = best {
                let reach = (ring - 1).max(0) as f64 * cell_size;
                if reach * reach > d2 {
                    break;
                }
            }
            for (x, y) in ring_cells(cx, cy, ring) {
                if x < 0 || y < 0 || x >= n || y >= n {
                    continue;
                }
                for &node in &self.cells[(y * n + x) as usize] {
                    let d2 = point.distance2(self.points[node as usize]);
                    if best.is_none_or(|(b, id)| (d2, node) < (b, id)) {
                        best = Some((d2, node));
                    }
                }
            }
        }
        best.map(|(_, node)| node)
    }
}

/// The cells at Chebyshev distance exactly `ring` from `(cx, cy)`.
fn ring_cells(cx: isize, cy: isize, ring: isize) -> Vec<(isize, isize)> {
    if ring == 0 {
        return vec![(cx, cy)];
    }
    let mut cells = Vec::with_capacity(8 * ring as usize);
    for d in -ring..=ring {
        cells.push((cx + d, cy - ring));
        cells.push((cx + d, cy + ring));
    }
    for d in (-ring + 1)..ring {
        cells.push((cx - ring, cy + d));
        cells.push((cx + ring, cy + d));
    }
    cells
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn nearest_matches_brute_force(points in prop::collection::vec((0.0..SIDE_MS, 0.0..SIDE_MS), 1..200), q in (0.0..SIDE_MS, 0.0..SIDE_MS)) {
            let mut plane = Plane::new(points.len());
            for &(x, y) in &points {
                let node = plane.place(Point { x, y });
                plane.add_present(node);
            }
            let query = Point { x: q.0, y: q.1 };
            let expected = (0..points.len() as u32)
                .min_by(|&a, &b| query.distance2(plane.point(a)).total_cmp(&query.distance2(plane.point(b))).then(a.cmp(&b)));
            prop_assert_eq!(plane.nearest(query), expected);
        }
    }
}
