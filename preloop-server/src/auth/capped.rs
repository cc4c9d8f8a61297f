//! The memory bound of the in-process caches (verified credentials, key uses): a map that is
//! emptied when it is full. Their entries are cheap to get again (a cleared entry is looked up
//! once more), so forgetting all at once is enough, and costs no bookkeeping per entry.

use std::collections::HashMap;
use std::hash::Hash;

/// Sets `key` to `value` in `map`; a map already holding `capacity` entries is emptied first,
/// so it never holds more than `capacity`.
pub(crate) fn insert_capped<K: Eq + Hash, V>(
    map: &mut HashMap<K, V>,
    capacity: usize,
    key: K,
    value: V,
) {
    if map.len() >= capacity {
        map.clear();
    }
    map.insert(key, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_map_is_emptied_before_the_next_insert() {
        let mut map = HashMap::new();
        insert_capped(&mut map, 2, 1, "a");
        insert_capped(&mut map, 2, 2, "b");
        assert_eq!(map.len(), 2);
        insert_capped(&mut map, 2, 3, "c");
        assert_eq!(map, HashMap::from([(3, "c")]));
    }
}
