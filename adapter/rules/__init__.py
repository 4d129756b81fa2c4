"""Domain rules: deadline texts and the Danish working-day calendar."""
