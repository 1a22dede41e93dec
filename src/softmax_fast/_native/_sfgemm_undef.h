/* Ends one instantiation of _sfgemm_impl.h: undefines its type macros (see _sfgemm.h). */
#undef SFG_T
#undef SFG_V
#undef SFG_LANES
#undef SFG
#undef SFG_MASKT
#undef SFG_ZERO
#undef SFG_LOAD
#undef SFG_STORE
#undef SFG_SET1
#undef SFG_FMA
#undef SFG_MASKLOAD
#undef SFG_MASKSTORE
#undef SFG_MASK
