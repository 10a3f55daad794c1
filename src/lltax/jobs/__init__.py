"""One module per command (and rule): load the inputs, call the numerics with named arguments,
write the record atomically with what it was computed from. The only code that knows file
formats and names; ``lltax.cli`` builds each command's parser from its ``ARGUMENTS``."""
