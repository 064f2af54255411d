# Reference values for analysis/trial_models.py, computed with R's lme4 (linear mixed model) and
# glm + sandwich::vcovCL (logistic regression, SEs clustered by participant). Reproduce from the
# repository root (Debian 12: apt-get install r-base-core r-cran-lme4 r-cran-sandwich) with:
#
#   Rscript tests/reference/trial_models_reference.R > tests/reference/trial_models_lme4.csv
#
# Input: trial_models_input.csv (written by trial_models_reference.py: a synthetic anagram test
# phase, 3 groups x 12 participants x 10 items). R is needed only to regenerate this file; the
# tests read the CSV (tests/test_analysis_trial_models.py), CI needs no R.
#
# The design is lhlab's (analysis/trial_models.py, `fit` and `_frame`), reproduced exactly:
#   - every row is a test trial of an anagram phase (the input holds nothing else);
#   - latency outcome: log(latency_scored), unsolved trials already scored at the limit (100 s);
#     trials with latency <= 0 or missing would be dropped (there are none);
#   - failure outcome: outcome != "solved";
#   - fixed effects `0 + condition + item_id`: one coefficient per group (cell-means coding, no
#     intercept; group levels in the protocol's order unsolvable, solvable, notraining) and
#     sum-coded items (contr.sum: levels sorted i00..i09, the last one dropped), i.e. lhlab's
#     `0 + C(grp) + C(item, Sum)`; the group coefficients are group means at the average item;
#   - LMM: random intercept per participant, REML;
#   - logistic: glm binomial (logit), vcovCL(cluster = ~participant_id, type = "HC1"): the meat
#     scaled by G / (G - 1) * (n - 1) / (n - k) (G clusters, n trials, k coefficients), which is
#     what statsmodels' cov_type = "cluster" (use_correction=True, Stata's default) applies and
#     so lhlab's definition. vcovCL's own default for a glm is type "HC0" (G / (G - 1) only):
#     its SEs are smaller by sqrt((n - k) / (n - 1)); pinned too (failure.contrast.se_hc0) so
#     the difference between the two definitions is on record, not a surprise;
#   - contrast: helpless minus the mean of the other groups, weights c(1, -1/2, -1/2) on the
#     three group coefficients, SE from the model's covariance (lme4's vcov: sigma^2 (X'V*^-1 X)^-1,
#     the same Wald covariance lhlab computes), z test.
# lmer's optimiser tolerances are tightened (the default stops ~1e-6 from the optimum in theta) so
# the pinned values are the REML optimum itself, not where an optimiser happened to stop.
#
# Crossed mixed models (issue 11), on three inputs: "base" (trial_models_input.csv), "crossed"
# (trial_models_crossed_input.csv: real participant and item variance) and "singular"
# (trial_models_singular_input.csv: no item effect, lme4 estimates the item SD as 0, 2 groups):
#   - glmm: glmer(failed ~ 0 + condition + (1 | participant_id) + (1 | item_id), binomial), Laplace
#     (nAGQ = 1), i.e. the issue's glmer(solved ~ condition + ...) with the outcome flipped to
#     "failed" (so positive = helpless worse) and cell-means coding (so the helpless contrast is
#     c(1, -1/2, -1/2) as above; the issue's own call is fitted too, "glmm_solved", and the test checks
#     it is the same model). Keys glmm.<data>.{fe,se,se_rx}.grp.<level>: se = lme4's default vcov
#     (finite-difference Hessian of the Laplace deviance in (theta, beta)), se_rx = vcov(use.hessian =
#     FALSE); sd.participant, sd.item, loglik, singular (isSingular), contrast.*, n_*.
#     Tight controls: PIRLS tolerance tolPwrss = 1e-12 (lme4's default 1e-7 stops the inner
#     iterations early: its Laplace deviance is then ~2e-4 too high and the optimum moves ~3e-4 in
#     theta) and bobyqa in both stages to rhoend 1e-12. The fit with lme4's defaults is pinned too
#     (glmm_default.<data>.*), so what an R user gets out of the box is on record;
#   - lmm: lmer(log_latency ~ 0 + condition + (1 | participant_id) + (1 | item_id), REML = TRUE),
#     tight bobyqa as above; lmm.<data>.{fe,se}.grp.<level>, sd.participant, sd.item, sigma,
#     reml_criterion, singular, contrast.*;
#   - glmm1.crossed / lmm1.crossed: the same two models with the participant intercept only (what
#     lhlab fits for a task without item ids): fe, se, sd.participant, loglik;
#   - lrt.<measure>: the three-group omnibus test of a yes/no measure (binary_lrt_input.csv) as a
#     likelihood-ratio test of condition in a logistic regression, anova(glm(y ~ condition,
#     binomial), test = "LRT"): chisq (deviance reduction), df, p; plus Pearson's chi-square
#     (chisq.test(correct = FALSE)) beside it. pattern_found has a group with no success (a zero
#     cell: glm's estimate diverges, its deviance converges; epsilon 1e-14).
#
# Output: key,value lines (15 significant digits) after '#' comment lines naming the versions.
# Keys: <model>.fe.<term> and <model>.se.<term> for every fixed effect (terms grp.<level>,
# item.<level>), <model>.contrast.{estimate,se,statistic,p}, latency.{tau2,sigma2,reml_criterion,
# n_trials,n_participants}, failure.{contrast.se_hc0,deviance,n_trials}.

suppressPackageStartupMessages({
  library(lme4)
  library(sandwich)
})

d <- read.csv("tests/reference/trial_models_input.csv")
d <- d[d$role == "test" & d$task == "anagram", ]
d$condition <- factor(d$condition, levels = c("unsolvable", "solvable", "notraining"))
d$item_id <- factor(d$item_id, levels = sort(unique(d$item_id)))
d$participant_id <- factor(d$participant_id)
d$failed <- as.numeric(d$outcome != "solved")
d$log_latency <- ifelse(d$latency_scored > 0, log(d$latency_scored), NA)
options(contrasts = c("contr.sum", "contr.poly"))

out <- data.frame(key = character(), value = numeric())
put <- function(key, value) {
  out[nrow(out) + 1, ] <<- list(key, as.numeric(value))
}
term_names <- function(nm) {
  grp <- levels(d$condition)
  items <- levels(d$item_id)
  sapply(nm, function(x) {
    if (startsWith(x, "condition")) paste0("grp.", sub("^condition", "", x))
    else paste0("item.", items[as.integer(sub("^item_id", "", x))])
  })
}
w <- c(1, -0.5, -0.5)
contrast <- function(model, b, V) {
  est <- sum(w * b[1:3])
  se <- sqrt(drop(t(w) %*% V[1:3, 1:3] %*% w))
  put(paste0(model, ".contrast.estimate"), est)
  put(paste0(model, ".contrast.se"), se)
  put(paste0(model, ".contrast.statistic"), est / se)
  put(paste0(model, ".contrast.p"), 2 * pnorm(-abs(est / se)))
}

# latency: linear mixed model of log latency
lat <- d[!is.na(d$log_latency), ]
m <- lmer(log_latency ~ 0 + condition + item_id + (1 | participant_id), data = lat, REML = TRUE,
          control = lmerControl(optimizer = "bobyqa",
                                optCtrl = list(rhobeg = 0.2, rhoend = 1e-12, maxfun = 1e5)))
stopifnot(is.null(m@optinfo$conv$lme4$code), m@optinfo$conv$opt == 0)
b <- fixef(m)
V <- as.matrix(vcov(m))
nm <- term_names(names(b))
for (i in seq_along(b)) put(paste0("latency.fe.", nm[i]), b[i])
for (i in seq_along(b)) put(paste0("latency.se.", nm[i]), sqrt(V[i, i]))
contrast("latency", b, V)
vc <- as.data.frame(VarCorr(m))
put("latency.tau2", vc$vcov[vc$grp == "participant_id"])
put("latency.sigma2", sigma(m)^2)
put("latency.reml_criterion", REMLcrit(m))
put("latency.n_trials", nrow(lat))
put("latency.n_participants", nlevels(droplevels(lat$participant_id)))

# failure: logistic regression, SE clustered by participant
g <- glm(failed ~ 0 + condition + item_id, family = binomial, data = d,
         control = glm.control(epsilon = 1e-14, maxit = 100))
stopifnot(g$converged)
b <- coef(g)
V <- vcovCL(g, cluster = ~participant_id, type = "HC1")
nm <- term_names(names(b))
for (i in seq_along(b)) put(paste0("failure.fe.", nm[i]), b[i])
for (i in seq_along(b)) put(paste0("failure.se.", nm[i]), sqrt(V[i, i]))
contrast("failure", b, V)
V0 <- vcovCL(g, cluster = ~participant_id)   # vcovCL's default for a glm: HC0
put("failure.contrast.se_hc0", sqrt(drop(t(w) %*% V0[1:3, 1:3] %*% w)))
put("failure.deviance", deviance(g))
put("failure.n_trials", nrow(d))

# crossed random intercepts: participants and items (issue 11)
tight_glmer <- glmerControl(optimizer = c("bobyqa", "bobyqa"), tolPwrss = 1e-12,
                            optCtrl = list(rhobeg = 0.2, rhoend = 1e-12, maxfun = 1e5))
tight_lmer <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhobeg = 0.2, rhoend = 1e-12, maxfun = 1e5))
crossed <- function(name, file) {
  x <- read.csv(file.path("tests/reference", file))
  x <- x[x$role == "test" & x$task == "anagram", ]
  lv <- intersect(c("unsolvable", "solvable", "notraining"), unique(x$condition))
  x$condition <- factor(x$condition, levels = lv)
  x$participant_id <- factor(x$participant_id)
  x$item_id <- factor(x$item_id)
  x$failed <- as.numeric(x$outcome != "solved")
  x$solved <- 1 - x$failed
  x$log_latency <- ifelse(x$latency_scored > 0, log(x$latency_scored), NA)
  wc <- c(1, rep(-1 / (length(lv) - 1), length(lv) - 1))
  con <- function(key, b, V) {
    est <- sum(wc * b)
    se <- sqrt(drop(t(wc) %*% as.matrix(V) %*% wc))
    put(paste0(key, ".contrast.estimate"), est)
    put(paste0(key, ".contrast.se"), se)
    put(paste0(key, ".contrast.statistic"), est / se)
    put(paste0(key, ".contrast.p"), 2 * pnorm(-abs(est / se)))
  }
  sds <- function(key, m) {
    vc <- as.data.frame(VarCorr(m))
    put(paste0(key, ".sd.participant"), vc$sdcor[vc$grp == "participant_id"])
    put(paste0(key, ".sd.item"), vc$sdcor[vc$grp == "item_id"])
    put(paste0(key, ".singular"), as.numeric(isSingular(m)))
  }
  f <- failed ~ 0 + condition + (1 | participant_id) + (1 | item_id)
  for (variant in c("glmm", "glmm_default")) {
    key <- paste0(variant, ".", name)
    g <- if (variant == "glmm") glmer(f, data = x, family = binomial, control = tight_glmer)
         else suppressMessages(glmer(f, data = x, family = binomial))
    if (variant == "glmm") stopifnot(is.null(g@optinfo$conv$lme4$code) || isSingular(g), g@optinfo$conv$opt == 0)
    b <- fixef(g)
    V <- as.matrix(vcov(g))
    Vrx <- suppressWarnings(as.matrix(vcov(g, use.hessian = FALSE)))
    for (i in seq_along(b)) put(paste0(key, ".fe.grp.", lv[i]), b[i])
    for (i in seq_along(b)) put(paste0(key, ".se.grp.", lv[i]), sqrt(V[i, i]))
    for (i in seq_along(b)) put(paste0(key, ".se_rx.grp.", lv[i]), sqrt(Vrx[i, i]))
    sds(key, g)
    put(paste0(key, ".loglik"), as.numeric(logLik(g)))
    con(key, b, V)
  }
  put(paste0("glmm.", name, ".n_trials"), nrow(x))
  put(paste0("glmm.", name, ".n_participants"), nlevels(x$participant_id))
  put(paste0("glmm.", name, ".n_items"), nlevels(x$item_id))
  # the issue's call as written: solved, treatment coding with an intercept
  # (R's default treatment contrasts, as an R user fitting it would get; this script sets contr.sum)
  s <- glmer(solved ~ condition + (1 | participant_id) + (1 | item_id), data = x, family = binomial,
             control = tight_glmer, contrasts = list(condition = "contr.treatment"))
  stopifnot(identical(names(fixef(s))[-1], paste0("condition", lv[-1])))
  b <- fixef(s)
  put(paste0("glmm_solved.", name, ".fe.intercept"), b[1])
  for (i in seq_along(lv)[-1]) put(paste0("glmm_solved.", name, ".fe.condition", lv[i]), b[i])
  put(paste0("glmm_solved.", name, ".loglik"), as.numeric(logLik(s)))
  lat <- x[!is.na(x$log_latency), ]
  m <- lmer(log_latency ~ 0 + condition + (1 | participant_id) + (1 | item_id), data = lat, REML = TRUE,
            control = tight_lmer)
  stopifnot(m@optinfo$conv$opt == 0)
  key <- paste0("lmm.", name)
  b <- fixef(m)
  V <- as.matrix(vcov(m))
  for (i in seq_along(b)) put(paste0(key, ".fe.grp.", lv[i]), b[i])
  for (i in seq_along(b)) put(paste0(key, ".se.grp.", lv[i]), sqrt(V[i, i]))
  sds(key, m)
  put(paste0(key, ".sigma"), sigma(m))
  put(paste0(key, ".reml_criterion"), REMLcrit(m))
  put(paste0(key, ".n_trials"), nrow(lat))
  con(key, b, V)
}
# one grouping factor only (a task without item ids, e.g. the shuttle box): participant intercepts
one_factor <- function(name, file) {
  x <- read.csv(file.path("tests/reference", file))
  lv <- intersect(c("unsolvable", "solvable", "notraining"), unique(x$condition))
  x$condition <- factor(x$condition, levels = lv)
  x$failed <- as.numeric(x$outcome != "solved")
  x$log_latency <- log(x$latency_scored)
  g <- glmer(failed ~ 0 + condition + (1 | participant_id), data = x, family = binomial, control = tight_glmer)
  m <- lmer(log_latency ~ 0 + condition + (1 | participant_id), data = x, REML = TRUE, control = tight_lmer)
  for (mod in list(list("glmm1", g), list("lmm1", m))) {
    key <- paste0(mod[[1]], ".", name)
    b <- fixef(mod[[2]])
    V <- as.matrix(vcov(mod[[2]]))
    for (i in seq_along(b)) put(paste0(key, ".fe.grp.", lv[i]), b[i])
    for (i in seq_along(b)) put(paste0(key, ".se.grp.", lv[i]), sqrt(V[i, i]))
    vc <- as.data.frame(VarCorr(mod[[2]]))
    put(paste0(key, ".sd.participant"), vc$sdcor[vc$grp == "participant_id"])
    put(paste0(key, ".loglik"), as.numeric(logLik(mod[[2]])))
  }
}
crossed("base", "trial_models_input.csv")
crossed("crossed", "trial_models_crossed_input.csv")
crossed("singular", "trial_models_singular_input.csv")
one_factor("crossed", "trial_models_crossed_input.csv")

# three-group yes/no measure: likelihood-ratio test of condition in a logistic regression
bl <- read.csv("tests/reference/binary_lrt_input.csv")
bl$condition <- factor(bl$condition, levels = c("unsolvable", "solvable", "notraining"))
for (v in c("pattern_found", "insight")) {
  g <- suppressWarnings(glm(as.formula(paste(v, "~ condition")), family = binomial, data = bl,
                            control = glm.control(epsilon = 1e-14, maxit = 100)))
  a <- anova(g, test = "LRT")
  put(paste0("lrt.", v, ".chisq"), a$Deviance[2])
  put(paste0("lrt.", v, ".df"), a$Df[2])
  put(paste0("lrt.", v, ".p"), a[["Pr(>Chi)"]][2])
  pc <- suppressWarnings(chisq.test(table(bl$condition, bl[[v]]), correct = FALSE))
  put(paste0("lrt.", v, ".pearson_chisq"), pc$statistic)
  put(paste0("lrt.", v, ".pearson_p"), pc$p.value)
}

cat(sprintf("# %s; lme4 %s (Matrix %s); sandwich %s\n", R.version.string, packageVersion("lme4"),
            packageVersion("Matrix"), packageVersion("sandwich")))
cat("# Rscript tests/reference/trial_models_reference.R > tests/reference/trial_models_lme4.csv\n")
cat("key,value\n")
cat(sprintf("%s,%s\n", out$key, trimws(formatC(out$value, digits = 15, format = "g"))), sep = "")
