"""What a trainer trains: a task builds its modules, computes its losses, validates and exports;
the loop (``leafnet.training.loop``) drives any task the same way."""
