"""JSON API blueprints, one module per resource. A view validates, calls one ``shared`` function, and responds."""
