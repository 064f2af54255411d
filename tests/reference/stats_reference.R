# Reference values for analysis/stats.py, computed with R (Debian 12: r-base-core 4.2.2,
# r-cran-survival 3.5-3). Reproduce from the repository root with:
#
#   Rscript tests/reference/stats_reference.R > tests/reference/stats_expected.csv
#
# Inputs (kept beside this script):
#   stats_input.csv     per-participant measures of 39 simulated participants (14 unsolvable /
#                       helpless, 12 solvable / controllable, 13 notraining / control), taken
#                       from a data-only simulated study (helplessness_effect 0.9).
#   survival_input.csv  a hand-made 3-group survival data set with ties and interior censoring.
# Output: key,value lines (15 significant digits) read by tests/test_analysis_stats.py.

suppressPackageStartupMessages(library(survival))

d <- read.csv("tests/reference/stats_input.csv")
d$condition <- factor(d$condition, levels = c("unsolvable", "solvable", "notraining"))
s <- read.csv("tests/reference/survival_input.csv")

out <- data.frame(key = character(), value = numeric())
put <- function(key, value) {
  out[nrow(out) + 1, ] <<- list(key, as.numeric(value))
}

levs <- levels(d$condition)
pairs <- list(c("unsolvable", "solvable"), c("unsolvable", "notraining"), c("solvable", "notraining"))

# Hedges g by hand: d = (ma - mb) / sp, J = 1 - 3 / (4 df - 1),
# var(d) = sum(w^2 / n) + d^2 / (2 N) (Hedges & Olkin 1985; Borenstein et al. 2009),
# CI = g +/- z * J * sqrt(var(d)) (normal approximation).
hedges <- function(groups, w) {
  keep <- w != 0
  groups <- groups[keep]; w <- w[keep]
  w <- ifelse(w > 0, w / sum(w[w > 0]), -w / sum(w[w < 0]))
  n <- sapply(groups, length)
  df <- sum(n - 1)
  sp <- sqrt(sum(sapply(groups, function(x) (length(x) - 1) * var(x))) / df)
  dd <- sum(w * sapply(groups, mean)) / sp
  J <- 1 - 3 / (4 * df - 1)
  se <- J * sqrt(sum(w^2 / n) + dd^2 / (2 * sum(n)))
  z <- qnorm(0.975)
  c(g = J * dd, se = se, lo = J * dd - z * se, hi = J * dd + z * se)
}

contr <- list(helpless_vs_others = c(1, -0.5, -0.5), controllable_vs_control = c(0, 1, -1))

for (dv in c("test_mean_latency", "test_failures", "check_control")) {
  y <- d[[dv]]
  g <- d$condition
  groups <- split(y, g)
  for (lv in levs) {
    x <- groups[[lv]]
    tt <- t.test(x)
    put(sprintf("desc.%s.%s.n", dv, lv), length(x))
    put(sprintf("desc.%s.%s.mean", dv, lv), mean(x))
    put(sprintf("desc.%s.%s.sd", dv, lv), sd(x))
    put(sprintf("desc.%s.%s.ci_low", dv, lv), tt$conf.int[1])
    put(sprintf("desc.%s.%s.ci_high", dv, lv), tt$conf.int[2])
  }
  a <- summary(aov(y ~ g))[[1]]
  put(sprintf("anova.%s.ddof1", dv), a[1, "Df"])
  put(sprintf("anova.%s.ddof2", dv), a[2, "Df"])
  put(sprintf("anova.%s.F", dv), a[1, "F value"])
  put(sprintf("anova.%s.p_unc", dv), a[1, "Pr(>F)"])
  w <- oneway.test(y ~ g, var.equal = FALSE)
  put(sprintf("welch.%s.ddof1", dv), w$parameter[1])
  put(sprintf("welch.%s.ddof2", dv), w$parameter[2])
  put(sprintf("welch.%s.F", dv), w$statistic)
  put(sprintf("welch.%s.p_unc", dv), w$p.value)
  k <- kruskal.test(y ~ g)
  put(sprintf("kruskal.%s.ddof1", dv), k$parameter)
  put(sprintf("kruskal.%s.H", dv), k$statistic)
  put(sprintf("kruskal.%s.p_unc", dv), k$p.value)
  ps <- c()
  for (p in pairs) {
    m <- suppressWarnings(wilcox.test(groups[[p[1]]], groups[[p[2]]], exact = FALSE, correct = TRUE))
    put(sprintf("mwu.%s.%s.%s.U", dv, p[1], p[2]), m$statistic)
    put(sprintf("mwu.%s.%s.%s.p_unc", dv, p[1], p[2]), m$p.value)
    ps <- c(ps, m$p.value)
  }
  ph <- p.adjust(ps, method = "holm")
  for (i in seq_along(pairs)) put(sprintf("mwu.%s.%s.%s.p_holm", dv, pairs[[i]][1], pairs[[i]][2]), ph[i])

  # Pooled-MSE contrasts through lm with (orthogonal) contrast coding: the coefficient of
  # each contrast column is estimate / sum(c^2), with the same t and p as the contrast.
  g2 <- g
  cm <- cbind(contr$helpless_vs_others, contr$controllable_vs_control)
  contrasts(g2) <- cm
  fit <- summary(lm(y ~ g2))
  n <- sapply(groups, length); mu <- sapply(groups, mean); v <- sapply(groups, var)
  mse <- sum((n - 1) * v) / (sum(n) - 3)
  for (j in seq_along(contr)) {
    cc <- contr[[j]]; name <- names(contr)[j]
    est <- sum(cc * mu)
    se <- sqrt(mse * sum(cc^2 / n))
    dfp <- sum(n) - 3
    coef_t <- fit$coefficients[j + 1, "t value"]
    stopifnot(abs(coef_t - est / se) < 1e-9)          # lm agrees with the hand formula
    put(sprintf("contrast.%s.%s.estimate", dv, name), est)
    put(sprintf("contrast.%s.%s.se", dv, name), se)
    put(sprintf("contrast.%s.%s.t", dv, name), coef_t)
    put(sprintf("contrast.%s.%s.df", dv, name), dfp)
    put(sprintf("contrast.%s.%s.p_unc", dv, name), fit$coefficients[j + 1, "Pr(>|t|)"])
    put(sprintf("contrast.%s.%s.ci_low", dv, name), est - qt(0.975, dfp) * se)
    put(sprintf("contrast.%s.%s.ci_high", dv, name), est + qt(0.975, dfp) * se)
    # Welch-Satterthwaite contrast
    terms <- cc^2 * v / n
    sew <- sqrt(sum(terms)); dfw <- sum(terms)^2 / sum(terms[cc != 0]^2 / (n[cc != 0] - 1))
    put(sprintf("contrastw.%s.%s.se", dv, name), sew)
    put(sprintf("contrastw.%s.%s.t", dv, name), est / sew)
    put(sprintf("contrastw.%s.%s.df", dv, name), dfw)
    put(sprintf("contrastw.%s.%s.p_unc", dv, name), 2 * pt(-abs(est / sew), dfw))
    h <- hedges(groups, cc)
    put(sprintf("g.%s.%s.g", dv, name), h["g"])
    put(sprintf("g.%s.%s.se", dv, name), h["se"])
    put(sprintf("g.%s.%s.ci_low", dv, name), h["lo"])
    put(sprintf("g.%s.%s.ci_high", dv, name), h["hi"])
  }
  for (p in pairs[1:2]) {
    tt <- t.test(groups[[p[1]]], groups[[p[2]]])
    put(sprintf("welch_t.%s.%s.%s.diff", dv, p[1], p[2]), tt$estimate[1] - tt$estimate[2])
    put(sprintf("welch_t.%s.%s.%s.df", dv, p[1], p[2]), tt$parameter)
    put(sprintf("welch_t.%s.%s.%s.p_unc", dv, p[1], p[2]), tt$p.value)
    put(sprintf("welch_t.%s.%s.%s.ci_low", dv, p[1], p[2]), tt$conf.int[1])
    put(sprintf("welch_t.%s.%s.%s.ci_high", dv, p[1], p[2]), tt$conf.int[2])
    h <- hedges(list(groups[[p[1]]], groups[[p[2]]]), c(1, -1))
    put(sprintf("pair_g.%s.%s.%s.g", dv, p[1], p[2]), h["g"])
    put(sprintf("pair_g.%s.%s.%s.ci_low", dv, p[1], p[2]), h["lo"])
    put(sprintf("pair_g.%s.%s.%s.ci_high", dv, p[1], p[2]), h["hi"])
  }
}

# Log-rank on trials to criterion (event = criterion reached = not censored).
lr <- survdiff(Surv(test_trials_to_criterion, 1 - test_criterion_censored) ~ condition, data = d)
put("logrank.anagram.chi2", lr$chisq)
put("logrank.anagram.dof", length(lr$n) - 1)
put("logrank.anagram.p_unc", pchisq(lr$chisq, length(lr$n) - 1, lower.tail = FALSE))
for (i in seq_along(levs)) {
  put(sprintf("logrank.anagram.%s.observed", levs[i]), lr$obs[i])
  put(sprintf("logrank.anagram.%s.expected", levs[i]), lr$exp[i])
}

# Log-rank and Kaplan-Meier on the hand-made set (conf.type = "log", R's default).
lr <- survdiff(Surv(time, event) ~ group, data = s)
put("logrank.hand.chi2", lr$chisq)
put("logrank.hand.dof", length(lr$n) - 1)
put("logrank.hand.p_unc", pchisq(lr$chisq, length(lr$n) - 1, lower.tail = FALSE))
fit <- survfit(Surv(time, event) ~ group, data = s)
sm <- summary(fit, censored = TRUE)
strata <- sub("group=", "", as.character(sm$strata))
for (i in seq_along(sm$time)) {
  base <- sprintf("km.hand.%s.%g", strata[i], sm$time[i])
  put(paste0(base, ".n_risk"), sm$n.risk[i])
  put(paste0(base, ".n_event"), sm$n.event[i])
  put(paste0(base, ".n_censor"), sm$n.censor[i])
  put(paste0(base, ".survival"), sm$surv[i])
  put(paste0(base, ".se"), sm$std.err[i])
  put(paste0(base, ".ci_low"), sm$lower[i])
  put(paste0(base, ".ci_high"), sm$upper[i])
}

out$value <- trimws(formatC(out$value, digits = 15, format = "g"))
write.csv(out, stdout(), row.names = FALSE, quote = FALSE)
