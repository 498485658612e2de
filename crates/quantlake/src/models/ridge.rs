//! Ridge regression on standardized features, solved in closed form.
//!
//! Each feature is standardized on the training rows (mean and population standard deviation, kept in
//! the fit so scoring applies the same transform); the intercept is the target's mean and is not
//! penalized. With `Z` the standardized `n x p` design and `y` the target, the fit minimizes
//!
//! ```text
//!     (1/n) ||y - mean(y) - Z w||^2 + alpha ||w||^2      =>      (Z'Z/n + alpha I) w = Z'(y - mean(y))/n
//! ```
//!
//! so `alpha` is on the scale of a feature's unit variance whatever the row count (`alpha = 0` is
//! ordinary least squares). The `p x p` system is solved by a Cholesky factorization (nalgebra).
//!
//! Determinism: sums run in row order on one thread, in plain `f64` arithmetic (no parallel
//! reductions, no SIMD dispatch), so the same rows in the same order give a bit-identical fit.
//! A feature that is constant on the training rows (standard deviation 0) cannot be standardized: its
//! weight is 0 and it is reported in [`RidgeFit::constant_features`].

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A fitted ridge model: what scoring needs to predict, and nothing else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RidgeFit {
    /// Per feature, in the design's column order.
    pub means: Vec<f64>,
    pub stds: Vec<f64>,
    /// Weights of the standardized features (0 for constant ones).
    pub weights: Vec<f64>,
    /// The target's mean on the training rows: the prediction at the features' means.
    pub intercept: f64,
    /// Columns that were constant on the training rows (weight 0).
    pub constant_features: Vec<usize>,
    pub alpha: f64,
    pub rows: usize,
}

impl RidgeFit {
    /// The prediction for one row of raw (unstandardized) features.
    pub fn predict_row(&self, x: &[f64]) -> f64 {
        let mut y = self.intercept;
        for (((w, xj), mean), std) in self.weights.iter().zip(x).zip(&self.means).zip(&self.stds) {
            if *w != 0.0 {
                y += w * (xj - mean) / std;
            }
        }
        y
    }

    /// Predictions for row-major rows of `p` features.
    pub fn predict(&self, x: &[f64]) -> Vec<f64> {
        let p = self.weights.len();
        if p == 0 {
            return Vec::new();
        }
        x.chunks_exact(p).map(|row| self.predict_row(row)).collect()
    }

    /// Coefficients on the raw features' scale and the matching intercept:
    /// `y = raw_intercept + sum(raw_coefficients[j] * x[j])`.
    pub fn raw_coefficients(&self) -> (f64, Vec<f64>) {
        let coefs: Vec<f64> = (0..self.weights.len())
            .map(|j| if self.weights[j] == 0.0 { 0.0 } else { self.weights[j] / self.stds[j] })
            .collect();
        let mut intercept = self.intercept;
        for (c, mean) in coefs.iter().zip(&self.means) {
            intercept -= c * mean;
        }
        (intercept, coefs)
    }
}

/// Fits ridge regression on `x` (row-major, `p` columns) and `y`. Fails when there are fewer than two
/// rows, a value is not finite, `alpha` is negative or not finite, or the system is singular (collinear
/// features with `alpha = 0`).
pub fn fit(x: &[f64], y: &[f64], p: usize, alpha: f64) -> Result<RidgeFit> {
    if !(alpha.is_finite() && alpha >= 0.0) {
        return Err(Error::invalid(format!("ridge alpha must be a finite number >= 0, got {alpha}")));
    }
    if p == 0 {
        return Err(Error::invalid("ridge regression needs at least one feature column"));
    }
    if x.len() != y.len() * p {
        return Err(Error::invalid(format!("design has {} values, expected {} rows x {p} features", x.len(), y.len())));
    }
    let n = y.len();
    if n < 2 {
        return Err(Error::invalid(format!(
            "ridge regression needs at least 2 rows with features and target, got {n}"
        )));
    }
    if let Some(i) = x.iter().chain(y).position(|v| !v.is_finite()) {
        return Err(Error::invalid(format!("non-finite value at position {i} of the design or target")));
    }
    let nf = n as f64;
    // Means and population standard deviations, summed in row order.
    let mut means = vec![0.0; p];
    for row in x.chunks_exact(p) {
        for j in 0..p {
            means[j] += row[j];
        }
    }
    for m in &mut means {
        *m /= nf;
    }
    let mut vars = vec![0.0; p];
    for row in x.chunks_exact(p) {
        for j in 0..p {
            let d = row[j] - means[j];
            vars[j] += d * d;
        }
    }
    let stds: Vec<f64> = vars.iter().map(|v| (v / nf).sqrt()).collect();
    // Constant: zero spread, or spread at rounding level of the values (a column of one repeated value
    // can have a tiny non-zero variance from the mean's rounding).
    let constant: Vec<usize> = (0..p).filter(|&j| stds[j] == 0.0 || stds[j] <= means[j].abs() * 1e-12).collect();
    let active: Vec<usize> = (0..p).filter(|j| !constant.contains(j)).collect();
    let mut y_mean = 0.0;
    for v in y {
        y_mean += v;
    }
    y_mean /= nf;

    let k = active.len();
    let mut weights = vec![0.0; p];
    if k > 0 {
        // Z'Z and Z'(y - mean(y)) over the active columns, in row order.
        let mut gram = vec![0.0; k * k];
        let mut rhs = vec![0.0; k];
        let mut z = vec![0.0; k];
        for (row, yi) in x.chunks_exact(p).zip(y) {
            for (a, &j) in active.iter().enumerate() {
                z[a] = (row[j] - means[j]) / stds[j];
            }
            let r = yi - y_mean;
            for a in 0..k {
                rhs[a] += z[a] * r;
                for b in a..k {
                    gram[a * k + b] += z[a] * z[b];
                }
            }
        }
        let a = DMatrix::from_fn(k, k, |r, c| {
            let (lo, hi) = if r <= c { (r, c) } else { (c, r) };
            gram[lo * k + hi] / nf + if r == c { alpha } else { 0.0 }
        });
        let b = DVector::from_iterator(k, rhs.iter().map(|v| v / nf));
        let chol = a.cholesky().ok_or_else(|| {
            Error::invalid(format!(
                "the standardized features are collinear (Z'Z/n + alpha I is not positive definite at alpha = {alpha}); use a larger alpha"
            ))
        })?;
        let w = chol.solve(&b);
        for (a, &j) in active.iter().enumerate() {
            if !w[a].is_finite() {
                return Err(Error::invalid(format!(
                    "the ridge solve gave a non-finite weight for column {j}; use a larger alpha"
                )));
            }
            weights[j] = w[a];
        }
    }
    Ok(RidgeFit { means, stds, weights, intercept: y_mean, constant_features: constant, alpha, rows: n })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * (1.0 + b.abs())
    }

    #[test]
    fn one_feature_matches_the_closed_form() {
        // x = 1..4, y = 2,4,5,8: mean x 2.5, var x 1.25, cov 2.375; OLS slope 1.9.
        let (x, y) = ([1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 5.0, 8.0]);
        for alpha in [0.0, 1.0, 0.25] {
            let f = fit(&x, &y, 1, alpha).unwrap();
            let (b0, b) = f.raw_coefficients();
            let slope = 2.375 / (1.25 * (1.0 + alpha));
            assert!(close(b[0], slope, 1e-12), "alpha {alpha}: {} vs {slope}", b[0]);
            assert!(close(b0, 4.75 - slope * 2.5, 1e-12));
            assert!(close(f.predict_row(&[2.5]), 4.75, 1e-12), "the prediction at the mean is the mean target");
        }
    }

    #[test]
    fn two_features_match_the_normal_equations() {
        // A hand-made 5 x 2 design; the expected weights solve (C + alpha I) w = c, where C is the
        // correlation matrix and c the standardized covariances with y, by a 2 x 2 inverse.
        let x = [1.0, 3.0, 2.0, 1.0, 4.0, 0.0, 3.0, 5.0, 5.0, 2.0];
        let y = [3.0, 2.0, 6.0, 7.0, 8.0];
        let alpha = 0.3;
        let n = 5.0;
        let col = |j: usize| -> Vec<f64> { (0..5).map(|i| x[i * 2 + j]).collect() };
        let mean = |v: &[f64]| v.iter().sum::<f64>() / n;
        let std = |v: &[f64]| {
            let m = mean(v);
            (v.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / n).sqrt()
        };
        let (x1, x2) = (col(0), col(1));
        let z = |v: &[f64]| -> Vec<f64> {
            let (m, s) = (mean(v), std(v));
            v.iter().map(|a| (a - m) / s).collect()
        };
        let (z1, z2) = (z(&x1), z(&x2));
        let ym = mean(&y);
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>() / n;
        let yc: Vec<f64> = y.iter().map(|v| v - ym).collect();
        let (a11, a12, a22) = (dot(&z1, &z1) + alpha, dot(&z1, &z2), dot(&z2, &z2) + alpha);
        let (c1, c2) = (dot(&z1, &yc), dot(&z2, &yc));
        let det = a11 * a22 - a12 * a12;
        let w1 = (a22 * c1 - a12 * c2) / det;
        let w2 = (a11 * c2 - a12 * c1) / det;
        let f = fit(&x, &y, 2, alpha).unwrap();
        assert!(close(f.weights[0], w1, 1e-12) && close(f.weights[1], w2, 1e-12), "{:?} vs {w1} {w2}", f.weights);
        assert!(close(f.intercept, ym, 1e-15));
        assert_eq!((f.means[0], f.means[1]), (3.0, 2.2));
    }

    #[test]
    fn alpha_to_zero_is_ols() {
        // y = 1 + 2 x1 - 3 x2 exactly: OLS recovers it, and so does ridge as alpha -> 0.
        let x = [0.0, 1.0, 1.0, 0.0, 2.0, 2.0, 3.0, 1.0, 4.0, 5.0, 5.0, 3.0];
        let y: Vec<f64> = x.chunks(2).map(|r| 1.0 + 2.0 * r[0] - 3.0 * r[1]).collect();
        let ols = fit(&x, &y, 2, 0.0).unwrap();
        let (b0, b) = ols.raw_coefficients();
        assert!(close(b0, 1.0, 1e-10) && close(b[0], 2.0, 1e-10) && close(b[1], -3.0, 1e-10), "{b0} {b:?}");
        let tiny = fit(&x, &y, 2, 1e-12).unwrap().raw_coefficients();
        assert!(close(tiny.1[0], 2.0, 1e-9) && close(tiny.1[1], -3.0, 1e-9), "{tiny:?}");
        // A real penalty shrinks the weights.
        let shrunk = fit(&x, &y, 2, 1.0).unwrap();
        assert!(shrunk.weights.iter().zip(&ols.weights).all(|(s, o)| s.abs() < o.abs()));
    }

    #[test]
    fn constant_and_collinear_features_are_named() {
        let x = [1.0, 7.0, 2.0, 7.0, 3.0, 7.0];
        let f = fit(&x, &[1.0, 2.0, 3.0], 2, 0.0).unwrap();
        assert_eq!(f.constant_features, vec![1]);
        assert_eq!(f.weights[1], 0.0);
        assert!(close(f.predict_row(&[4.0, 99.0]), 4.0, 1e-12), "a constant column never moves the prediction");
        // Two identical columns: singular without a penalty, fine with one.
        let dup = [1.0, 1.0, 2.0, 2.0, 4.0, 4.0];
        let err = fit(&dup, &[1.0, 2.0, 3.0], 2, 0.0).unwrap_err().to_string();
        assert!(err.contains("collinear"), "{err}");
        assert!(fit(&dup, &[1.0, 2.0, 3.0], 2, 0.1).is_ok());
        assert!(fit(&[1.0], &[1.0], 1, 0.0).unwrap_err().to_string().contains("at least 2 rows"));
        assert!(fit(&[1.0, f64::NAN], &[1.0, 2.0], 1, 0.0).is_err());
        assert!(fit(&[1.0, 2.0], &[1.0, 2.0], 1, -1.0).is_err());
    }

    #[test]
    fn the_fit_is_bit_identical_run_to_run() {
        let x: Vec<f64> = (0..3000).map(|i| ((i * 7919) % 1013) as f64 / 101.3 - 5.0).collect();
        let y: Vec<f64> =
            x.chunks(3).enumerate().map(|(i, r)| r[0] * 0.3 - r[2] * 0.1 + ((i * 31) % 17) as f64 / 17.0).collect();
        let a = fit(&x, &y, 3, 0.01).unwrap();
        let b = fit(&x, &y, 3, 0.01).unwrap();
        let bits =
            |f: &RidgeFit| f.weights.iter().chain(&f.means).chain(&f.stds).map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b));
    }
}
