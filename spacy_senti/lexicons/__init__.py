"""Lexicon loading (VADER valence and emoji lexicons, user/domain TSVs) and VADER's rules."""
