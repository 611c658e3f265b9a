"""Analysis studies (``bench motion``, ``bench focus``): measurements that are not a method's
record but ask a question of one family (how good is each motion source; where does AdaFocus
look). They sit on top of the harness and may import the methods and datasets they examine;
nothing imports them (the registry names them as strings)."""
