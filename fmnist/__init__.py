"""Fashion-MNIST Studio: the library behind the dashboard and the CLI."""
