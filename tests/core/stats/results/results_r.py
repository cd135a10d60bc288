# ruff: noqa: E501
"""Reference values computed with R 4.2.2 (Debian bookworm r-base-core), once, by the script below.

Run as ``Rscript ref.R > results_r.py`` (then this docstring was prepended). Output is exact
R numbers at 17 significant digits; alternatives use R spelling ("two.sided", "one.sided").

R script::

    options(digits = 17)
    f <- function(v) formatC(v, digits = 17, format = "g")
    cat("# prop.test(c(x_t, x_c), c(n_t, n_c), correct=FALSE)\\n")
    cases <- list(c(30, 1000, 45, 1000), c(120, 2400, 150, 2500), c(5, 80, 15, 90), c(500, 10000, 480, 9800), c(7, 20, 3, 25))
    cat("PROP_TEST = [\\n")
    for (cs in cases) {
      x_c <- cs[1]; n_c <- cs[2]; x_t <- cs[3]; n_t <- cs[4]
      for (alt in c("two.sided", "greater", "less")) {
        r <- suppressWarnings(prop.test(c(x_t, x_c), c(n_t, n_c), alternative = alt, correct = FALSE))
        cat(sprintf("    (%d, %d, %d, %d, \"%s\", %s, %s, %s, %s),\\n", x_c, n_c, x_t, n_t, alt,
                    f(r$statistic), f(r$p.value), f(r$conf.int[1]), f(r$conf.int[2])))
      }
    }
    cat("]\\n")
    cat("# power.prop.test(p1=, p2=, sig.level=, power=, alternative=, strict=TRUE)$n\\n")
    cat("POWER_PROP_N = [\\n")
    pp <- list(c(0.10, 0.11, 0.05, 0.8), c(0.05, 0.06, 0.05, 0.8), c(0.30, 0.33, 0.01, 0.9),
               c(0.50, 0.45, 0.05, 0.8), c(0.02, 0.025, 0.10, 0.95), c(0.20, 0.40, 0.05, 0.5))
    for (q in pp) for (alt in c("two.sided", "one.sided")) {
      r <- power.prop.test(p1 = q[1], p2 = q[2], sig.level = q[3], power = q[4], alternative = alt, strict = TRUE)
      cat(sprintf("    (%s, %s, %s, %s, \"%s\", %s),\\n", q[1], q[2], q[3], q[4], alt, f(r$n)))
    }
    cat("]\\n")
    cat("# power.prop.test(n=, p1=, p2=, sig.level=, alternative=, strict=TRUE)$power\\n")
    cat("POWER_PROP_POWER = [\\n")
    pn <- list(c(1000, 0.10, 0.12, 0.05), c(50, 0.30, 0.40, 0.05), c(20000, 0.05, 0.055, 0.01), c(30, 0.5, 0.52, 0.05))
    for (q in pn) for (alt in c("two.sided", "one.sided")) {
      r <- power.prop.test(n = q[1], p1 = q[2], p2 = q[3], sig.level = q[4], alternative = alt, strict = TRUE)
      cat(sprintf("    (%s, %s, %s, %s, \"%s\", %s),\\n", q[1], q[2], q[3], q[4], alt, f(r$power)))
    }
    cat("]\\n")
    cat("# power.prop.test(n=, p1=, power=, sig.level=, alternative=, strict=TRUE)$p2  (p2 > p1 branch)\\n")
    cat("POWER_PROP_P2 = [\\n")
    pq <- list(c(1000, 0.10, 0.8, 0.05), c(5000, 0.05, 0.9, 0.05), c(200, 0.4, 0.8, 0.01))
    for (q in pq) for (alt in c("two.sided", "one.sided")) {
      r <- power.prop.test(n = q[1], p1 = q[2], power = q[3], sig.level = q[4], alternative = alt, strict = TRUE, tol = 1e-12)
      cat(sprintf("    (%s, %s, %s, %s, \"%s\", %s),\\n", q[1], q[2], q[3], q[4], alt, f(r$p2)))
    }
    cat("]\\n")
    cat("# power.t.test(delta=, sd=, sig.level=, power=, type='two.sample', alternative=, strict=TRUE)$n\\n")
    cat("POWER_T_N = [\\n")
    pt <- list(c(1, 5, 0.05, 0.8), c(0.5, 2, 0.05, 0.9), c(2, 10, 0.01, 0.8), c(0.1, 1, 0.05, 0.8), c(3, 4, 0.05, 0.95), c(10, 40, 0.1, 0.8))
    for (q in pt) for (alt in c("two.sided", "one.sided")) {
      r <- power.t.test(delta = q[1], sd = q[2], sig.level = q[3], power = q[4], type = "two.sample", alternative = alt, strict = TRUE, tol = 1e-12)
      cat(sprintf("    (%s, %s, %s, %s, \"%s\", %s),\\n", q[1], q[2], q[3], q[4], alt, f(r$n)))
    }
    cat("]\\n")
    cat("# power.t.test(n=, delta=, sd=, sig.level=, type='two.sample', alternative=, strict=TRUE)$power\\n")
    cat("POWER_T_POWER = [\\n")
    ptp <- list(c(100, 1, 3, 0.05), c(40, 0.5, 1, 0.05), c(500, 0.2, 1.5, 0.01), c(30, 1, 1, 0.05))
    for (q in ptp) for (alt in c("two.sided", "one.sided")) {
      r <- power.t.test(n = q[1], delta = q[2], sd = q[3], sig.level = q[4], type = "two.sample", alternative = alt, strict = TRUE)
      cat(sprintf("    (%s, %s, %s, %s, \"%s\", %s),\\n", q[1], q[2], q[3], q[4], alt, f(r$power)))
    }
    cat("]\\n")
    cat("# power.t.test(n=, sd=, sig.level=, power=, type='two.sample', alternative=, strict=TRUE)$delta\\n")
    cat("POWER_T_DELTA = [\\n")
    ptd <- list(c(100, 3, 0.05, 0.8), c(1000, 1, 0.05, 0.9), c(50, 2, 0.01, 0.8))
    for (q in ptd) for (alt in c("two.sided", "one.sided")) {
      r <- power.t.test(n = q[1], sd = q[2], sig.level = q[3], power = q[4], type = "two.sample", alternative = alt, strict = TRUE, tol = 1e-12)
      cat(sprintf("    (%s, %s, %s, %s, \"%s\", %s),\\n", q[1], q[2], q[3], q[4], alt, f(r$delta)))
    }
    cat("]\\n")
    cat("# chisq.test(x, p=weights)\\n")
    cat("CHISQ_GOF = [\\n")
    ch <- list(list(c(5050, 4950), c(0.5, 0.5)), list(c(10321, 9679), c(0.5, 0.5)), list(c(3300, 3400, 3300), c(1/3, 1/3, 1/3)),
               list(c(2100, 7900), c(0.2, 0.8)), list(c(980, 1010, 2050), c(0.25, 0.25, 0.5)))
    for (q in ch) {
      r <- chisq.test(q[[1]], p = q[[2]])
      cat(sprintf("    ((%s), (%s), %s, %s, %s),\\n", paste(q[[1]], collapse = ", "), paste(f(q[[2]]), collapse = ", "),
                  f(r$statistic), f(r$parameter), f(r$p.value)))
    }
    cat("]\\n")
    cat("# p.adjust(p, method=)\\n")
    pv <- list(c(0.01, 0.04, 0.03, 0.005, 0.2), c(0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216),
               c(0.5, 0.5, 0.01, 0.9), c(0.04))
    cat("P_ADJUST = [\\n")
    for (p in pv) for (m in c("holm", "BH")) {
      cat(sprintf("    (\"%s\", [%s], [%s]),\\n", tolower(m), paste(f(p), collapse = ", "), paste(f(p.adjust(p, method = m)), collapse = ", ")))
    }
    cat("]\\n")
    cat("# t.test(x=treatment, y=control, alternative=, var.equal=FALSE) on the vectors below\\n")
    ctrl <- c(12.1, 9.8, 11.4, 10.2, 13.5, 8.9, 10.7, 11.9, 12.3, 9.5, 10.0, 11.1)
    trt <- c(13.2, 12.8, 10.9, 14.1, 12.5, 15.0, 11.7, 13.9, 12.2)
    cat(sprintf("WELCH_CONTROL = [%s]\\n", paste(ctrl, collapse = ", ")))
    cat(sprintf("WELCH_TREATMENT = [%s]\\n", paste(trt, collapse = ", ")))
    cat("WELCH_TTEST = [\\n")
    for (alt in c("two.sided", "greater", "less")) {
      r <- t.test(trt, ctrl, alternative = alt, var.equal = FALSE)
      r2 <- t.test(trt, ctrl, alternative = "two.sided", var.equal = FALSE, conf.level = 0.9)
      cat(sprintf("    (\"%s\", %s, %s, %s, %s, %s, %s, %s),\\n", alt, f(r$statistic), f(r$parameter), f(r$p.value),
                  f(t.test(trt, ctrl, var.equal = FALSE)$conf.int[1]), f(t.test(trt, ctrl, var.equal = FALSE)$conf.int[2]),
                  f(r2$conf.int[1]), f(r2$conf.int[2])))
    }
    cat("]\\n")

Appended later (same R 4.2.2; ``f`` now prints infinities as ``math.inf``) by running
``Rscript add.R >> results_r.py``, with (its fisher.test table, the old small-count path's
reference, was removed with that path; what remains is this script's other output)::

    options(digits = 17)
    f <- function(v) ifelse(is.infinite(v), "math.inf", formatC(v, digits = 17, format = "g"))
    cat("# prop.test(x, n, p=, correct=FALSE): one sample, the first arm's count against its planned share\\n")
    ps <- list(c(5050, 10000, 0.5), c(10321, 20000, 0.5), c(2100, 10000, 0.2), c(6600, 12600, 0.5), c(980, 2000, 0.45))
    cat("PROP_TEST_ONE_SAMPLE = [\\n")
    for (q in ps) {
      r <- prop.test(q[1], q[2], p = q[3], correct = FALSE)
      cat(sprintf("    (%d, %d, %s, %s, %s),\\n", q[1], q[2], f(q[3]), f(r$statistic), f(r$p.value)))
    }
    cat("]\\n")
"""

# prop.test(c(x_t, x_c), c(n_t, n_c), correct=FALSE)
PROP_TEST = [
    (
        30,
        1000,
        45,
        1000,
        "two.sided",
        3.116883116883117,
        0.077484865132644451,
        -0.0016395055365695591,
        0.031639505536569558,
    ),
    (
        30,
        1000,
        45,
        1000,
        "greater",
        3.116883116883117,
        0.03874243256632235,
        0.0010356867532296168,
        1,
    ),
    (30, 1000, 45, 1000, "less", 3.116883116883117, 0.96125756743367763, -1, 0.02896431324677038),
    (
        120,
        2400,
        150,
        2500,
        "two.sided",
        2.3518118550515954,
        0.12513748721580589,
        -0.0027550846131166092,
        0.022755084613116601,
    ),
    (
        120,
        2400,
        150,
        2500,
        "greater",
        2.3518118550515954,
        0.062568743607903196,
        -0.00070440444490168369,
        1,
    ),
    (
        120,
        2400,
        150,
        2500,
        "less",
        2.3518118550515954,
        0.93743125639209679,
        -1,
        0.020704404444901674,
    ),
    (
        5,
        80,
        15,
        90,
        "two.sided",
        4.427083333333333,
        0.0353729057184273,
        0.010669363686220845,
        0.19766396964711247,
    ),
    (5, 80, 15, 90, "greater", 4.427083333333333, 0.017686452859213619, 0.02570125652105279, 1),
    (5, 80, 15, 90, "less", 4.427083333333333, 0.98231354714078634, -1, 0.18263207681228052),
    (
        500,
        10000,
        480,
        9800,
        "two.sided",
        0.10954521694600389,
        0.74066249496683367,
        -0.0070624152960505155,
        0.0050215989695198927,
    ),
    (
        500,
        10000,
        480,
        9800,
        "greater",
        0.10954521694600389,
        0.62966875251658316,
        -0.0060910203912551098,
        1,
    ),
    (
        500,
        10000,
        480,
        9800,
        "less",
        0.10954521694600389,
        0.37033124748341678,
        -1,
        0.004050204064724487,
    ),
    (
        7,
        20,
        3,
        25,
        "two.sided",
        3.4007142857142849,
        0.065168193581268422,
        -0.47479157694660906,
        0.014791576946609097,
    ),
    (7, 20, 3, 25, "greater", 3.4007142857142849, 0.96741590320936588, -0.43543556736951444, 1),
    (7, 20, 3, 25, "less", 3.4007142857142849, 0.032584096790634162, -1, -0.024564432630485522),
]
# power.prop.test(p1=, p2=, sig.level=, power=, alternative=, strict=TRUE)$n
POWER_PROP_N = [
    (0.1, 0.11, 0.05, 0.8, "two.sided", 14750.75443512813),
    (0.1, 0.11, 0.05, 0.8, "one.sided", 11619.069936374421),
    (0.05, 0.06, 0.05, 0.8, "two.sided", 8157.7115628610554),
    (0.05, 0.06, 0.05, 0.8, "one.sided", 6425.7218244110545),
    (0.3, 0.33, 0.01, 0.9, "two.sided", 7132.1939996180781),
    (0.3, 0.33, 0.01, 0.9, "one.sided", 6239.3096957047219),
    (0.5, 0.45, 0.05, 0.8, "two.sided", 1564.6683159419451),
    (0.5, 0.45, 0.05, 0.8, "one.sided", 1232.373399776656),
    (0.02, 0.025, 0.1, 0.95, "two.sided", 19038.864223406428),
    (0.02, 0.025, 0.1, 0.95, "one.sided", 15065.682584514241),
    (0.2, 0.4, 0.05, 0.5, "two.sided", 40.332346015359846),
    (0.2, 0.4, 0.05, 0.5, "one.sided", 28.408205772404074),
]
# power.prop.test(n=, p1=, p2=, sig.level=, alternative=, strict=TRUE)$power
POWER_PROP_POWER = [
    (1000, 0.1, 0.12, 0.05, "two.sided", 0.29808032538146001),
    (1000, 0.1, 0.12, 0.05, "one.sided", 0.4146252416835654),
    (50, 0.3, 0.4, 0.05, "two.sided", 0.18088557462854504),
    (50, 0.3, 0.4, 0.05, "one.sided", 0.27429513703864139),
    (20000, 0.05, 0.055, 0.01, "two.sided", 0.36917908446659914),
    (20000, 0.05, 0.055, 0.01, "one.sided", 0.46631626799988785),
    (30, 0.5, 0.52, 0.05, "two.sided", 0.052708609448863561),
    (30, 0.5, 0.52, 0.05, "one.sided", 0.068085632456494863),
]
# power.prop.test(n=, p1=, power=, sig.level=, alternative=, strict=TRUE)$p2  (p2 > p1 branch)
POWER_PROP_P2 = [
    (1000, 0.1, 0.8, 0.05, "two.sided", 0.14074510262991682),
    (1000, 0.1, 0.8, 0.05, "one.sided", 0.13584455742046475),
    (5000, 0.05, 0.9, 0.05, "two.sided", 0.065094913961552286),
    (5000, 0.05, 0.9, 0.05, "one.sided", 0.063541077005919003),
    (200, 0.4, 0.8, 0.01, "two.sided", 0.57018241806975511),
    (200, 0.4, 0.8, 0.01, "one.sided", 0.55772964637794897),
]
# power.t.test(delta=, sd=, sig.level=, power=, type='two.sample', alternative=, strict=TRUE)$n
POWER_T_N = [
    (1, 5, 0.05, 0.8, "two.sided", 393.40569501941417),
    (1, 5, 0.05, 0.8, "one.sided", 309.80646975966459),
    (0.5, 2, 0.05, 0.9, "two.sided", 337.20068124261451),
    (0.5, 2, 0.05, 0.9, "one.sided", 274.7221575832267),
    (2, 10, 0.01, 0.8, "two.sided", 585.60926432496558),
    (2, 10, 0.01, 0.8, "one.sided", 503.15664015321806),
    (0.1, 1, 0.05, 0.8, "two.sided", 1570.7330430137631),
    (0.1, 1, 0.05, 0.8, "one.sided", 1237.1883875318226),
    (3, 4, 0.05, 0.95, "two.sided", 47.186021079980819),
    (3, 4, 0.05, 0.95, "one.sided", 39.175155209389409),
    (10, 40, 0.1, 0.8, "two.sided", 198.51143881255192),
    (10, 40, 0.1, 0.8, "one.sided", 144.66528247959067),
]
# power.t.test(n=, delta=, sd=, sig.level=, type='two.sample', alternative=, strict=TRUE)$power
POWER_T_POWER = [
    (100, 1, 3, 0.05, "two.sided", 0.65011701690836809),
    (100, 1, 3, 0.05, "one.sided", 0.75931592806820636),
    (40, 0.5, 1, 0.05, "two.sided", 0.59814690114167601),
    (40, 0.5, 1, 0.05, "one.sided", 0.71625486865031851),
    (500, 0.2, 1.5, 0.01, "two.sided", 0.31876920655154262),
    (500, 0.2, 1.5, 0.01, "one.sided", 0.41253818665649444),
    (30, 1, 1, 0.05, "two.sided", 0.96770825824251472),
    (30, 1, 1, 0.05, "one.sided", 0.9854596902516255),
]
# power.t.test(n=, sd=, sig.level=, power=, type='two.sample', alternative=, strict=TRUE)$delta
POWER_T_DELTA = [
    (100, 3, 0.05, 0.8, "two.sided", 1.1944144127046967),
    (100, 3, 0.05, 0.8, "one.sided", 1.0585447290361016),
    (1000, 1, 0.05, 0.9, "two.sided", 0.14503468776103792),
    (1000, 1, 0.05, 0.9, "one.sided", 0.13091714921296899),
    (50, 2, 0.01, 0.8, "two.sided", 1.3905951280829052),
    (50, 2, 0.01, 0.8, "one.sided", 1.2849903057528971),
]
# chisq.test(x, p=weights)
CHISQ_GOF = [
    ((5050, 4950), (0.5, 0.5), 1, 1, 0.31731050786291415),
    ((10321, 9679), (0.5, 0.5), 20.6082, 1, 5.6354220907242798e-06),
    (
        (3300, 3400, 3300),
        (0.33333333333333331, 0.33333333333333331, 0.33333333333333331),
        2,
        2,
        0.36787944117144233,
    ),
    ((2100, 7900), (0.20000000000000001, 0.80000000000000004), 6.25, 1, 0.012419330651552294),
    ((980, 1010, 2050), (0.25, 0.25, 0.5), 1.3366336633663367, 2, 0.51257059470839772),
]
# p.adjust(p, method=)
P_ADJUST = [
    (
        "holm",
        [
            0.01,
            0.040000000000000001,
            0.029999999999999999,
            0.0050000000000000001,
            0.20000000000000001,
        ],
        [
            0.040000000000000001,
            0.089999999999999997,
            0.089999999999999997,
            0.025000000000000001,
            0.20000000000000001,
        ],
    ),
    (
        "bh",
        [
            0.01,
            0.040000000000000001,
            0.029999999999999999,
            0.0050000000000000001,
            0.20000000000000001,
        ],
        [
            0.025000000000000001,
            0.050000000000000003,
            0.050000000000000003,
            0.025000000000000001,
            0.20000000000000001,
        ],
    ),
    (
        "holm",
        [
            0.001,
            0.0080000000000000002,
            0.039,
            0.041000000000000002,
            0.042000000000000003,
            0.059999999999999998,
            0.073999999999999996,
            0.20499999999999999,
            0.21199999999999999,
            0.216,
        ],
        [
            0.01,
            0.072000000000000008,
            0.312,
            0.312,
            0.312,
            0.312,
            0.312,
            0.61499999999999999,
            0.61499999999999999,
            0.61499999999999999,
        ],
    ),
    (
        "bh",
        [
            0.001,
            0.0080000000000000002,
            0.039,
            0.041000000000000002,
            0.042000000000000003,
            0.059999999999999998,
            0.073999999999999996,
            0.20499999999999999,
            0.21199999999999999,
            0.216,
        ],
        [
            0.01,
            0.040000000000000001,
            0.084000000000000005,
            0.084000000000000005,
            0.084000000000000005,
            0.10000000000000001,
            0.10571428571428571,
            0.216,
            0.216,
            0.216,
        ],
    ),
    ("holm", [0.5, 0.5, 0.01, 0.90000000000000002], [1, 1, 0.040000000000000001, 1]),
    (
        "bh",
        [0.5, 0.5, 0.01, 0.90000000000000002],
        [0.66666666666666663, 0.66666666666666663, 0.040000000000000001, 0.90000000000000002],
    ),
    ("holm", [0.040000000000000001], [0.040000000000000001]),
    ("bh", [0.040000000000000001], [0.040000000000000001]),
]
# t.test(x=treatment, y=control, alternative=, var.equal=FALSE) on the vectors below
WELCH_CONTROL = [12.1, 9.8, 11.4, 10.2, 13.5, 8.9, 10.7, 11.9, 12.3, 9.5, 10, 11.1]
WELCH_TREATMENT = [13.2, 12.8, 10.9, 14.1, 12.5, 15, 11.7, 13.9, 12.2]
WELCH_TTEST = [
    (
        "two.sided",
        3.4226651912285475,
        17.868878726226516,
        0.0030609215443717012,
        0.76098320914366913,
        3.1834612353007774,
        0.97261558015963745,
        2.971828864284809,
    ),
    (
        "greater",
        3.4226651912285475,
        17.868878726226516,
        0.0015304607721858506,
        0.76098320914366913,
        3.1834612353007774,
        0.97261558015963745,
        2.971828864284809,
    ),
    (
        "less",
        3.4226651912285475,
        17.868878726226516,
        0.99846953922781423,
        0.76098320914366913,
        3.1834612353007774,
        0.97261558015963745,
        2.971828864284809,
    ),
]
# prop.test(x, n, p=, correct=FALSE): one sample, the first arm's count against its planned share
PROP_TEST_ONE_SAMPLE = [
    (5050, 10000,                0.5,                  1, 0.31731050786291415),
    (10321, 20000,                0.5,            20.6082, 5.6354220907242798e-06),
    (2100, 10000, 0.20000000000000001,               6.25, 0.012419330651552294),
    (6600, 12600,                0.5, 28.571428571428573, 9.0304886803647056e-08),
    (980, 2000, 0.45000000000000001, 12.929292929292929, 0.00032347994672584583),
]
