"""A fundraising tracker's web app that reads its caches through tiercache."""
