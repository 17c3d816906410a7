"""Evidence leaving and entering the archive: WACZ export and validation, import of our own packages,
and capture reports for editors and courts."""
